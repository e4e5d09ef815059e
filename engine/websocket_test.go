package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// wsDial opens a WebSocket to path /ws with gobwas/ws's client.
func wsDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	return wsDialPath(t, addr, "/ws")
}

func wsDialPath(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sawHeader bool
	d := ws.Dialer{OnHeader: func(key, value []byte) error {
		if string(key) == "X-Test" && string(value) == "1" {
			sawHeader = true
		}
		return nil
	}}
	c, br, _, err := d.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		t.Fatalf("ws dial: %v", err)
	}
	if !sawHeader {
		t.Fatal("extra header missing from 101")
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if br == nil {
		br = bufio.NewReader(c)
	}
	return c, br
}

// readWSFrame reads one frame, refusing payloads over 1 MiB.
func readWSFrame(r io.Reader) (ws.Frame, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if h.Length > 1<<20 {
		return ws.Frame{}, fmt.Errorf("frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return ws.Frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

func readFrame(t *testing.T, br *bufio.Reader) ws.Frame {
	t.Helper()
	f, err := readWSFrame(br)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if f.Header.Masked {
		t.Fatal("server frame is masked")
	}
	return f
}

// readCloseFrame reads frames until a close frame and returns its code.
func readCloseFrame(t *testing.T, br *bufio.Reader) (uint16, string) {
	t.Helper()
	for {
		f := readFrame(t, br)
		if f.Header.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(f.Payload)
			return uint16(code), reason
		}
	}
}

func writeClientFrame(t *testing.T, c net.Conn, f ws.Frame) {
	t.Helper()
	if err := ws.WriteFrame(c, ws.MaskFrame(f)); err != nil {
		t.Fatal(err)
	}
}

func wsHandler() *testHandler {
	h := newTestHandler()
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/hello" {
			return false
		}
		if err := c.UpgradeWebSocket(r, []byte("X-Test: 1\r\n")); err != nil {
			c.Reply(400, "text/plain", nil, nil)
			return true
		}
		c.SetTag("ws")
		frame := AppendTextFrame(nil, []byte(`["t1","hello"]`))
		c.Send(frame)
		c.Send(AppendTextFrame(nil, bytes.Repeat([]byte("x"), 70000)))
		return true
	}
	return h
}

func TestWebSocketServerFrames(t *testing.T) {
	h := wsHandler()
	s, addr := startServer(t, testOptions(), h)
	c, br := wsDialPath(t, addr, "/hello")
	if f := readFrame(t, br); f.Header.OpCode != ws.OpText || string(f.Payload) != `["t1","hello"]` {
		t.Fatalf("got %v %q", f.Header.OpCode, f.Payload)
	}
	if f := readFrame(t, br); len(f.Payload) != 70000 {
		t.Fatalf("got %d bytes", len(f.Payload))
	}
	// Ping is answered with the same payload.
	writeClientFrame(t, c, ws.NewPingFrame([]byte("p1")))
	if f := readFrame(t, br); f.Header.OpCode != ws.OpPong || string(f.Payload) != "p1" {
		t.Fatalf("got %v %q", f.Header.OpCode, f.Payload)
	}
	// Data frames are ignored; the connection stays.
	writeClientFrame(t, c, ws.NewTextFrame([]byte("ignored")))
	writeClientFrame(t, c, ws.NewPingFrame([]byte("p2")))
	if f := readFrame(t, br); string(f.Payload) != "p2" {
		t.Fatalf("got %q", f.Payload)
	}
	if s.Stats().WebSockets != 1 {
		t.Fatalf("WebSockets %d", s.Stats().WebSockets)
	}
	// Close is echoed, then the connection closes.
	writeClientFrame(t, c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	if code, _ := readCloseFrame(t, br); code != CloseNormal {
		t.Fatalf("close code %d", code)
	}
	expectEOF(t, br)
	waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == 1 })
}

func TestWebSocketRejects(t *testing.T) {
	h := wsHandler()
	_, addr := startServer(t, testOptions(), h)

	// Oversize frame: refused from its header, before the payload.
	c, br := wsDialPath(t, addr, "/hello")
	hdr := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Length: 70000, Mask: ws.NewMask()}
	if err := ws.WriteHeader(c, hdr); err != nil {
		t.Fatal(err)
	}
	go c.Write(make([]byte, 70000)) // the payload the server refuses to read
	if code, _ := readCloseFrame(t, br); code != CloseTooBig {
		t.Fatalf("oversize: close %d", code)
	}
	expectEOF(t, br)

	// Unmasked client frame.
	c, br = wsDialPath(t, addr, "/hello")
	if err := ws.WriteFrame(c, ws.NewTextFrame([]byte("plain"))); err != nil {
		t.Fatal(err)
	}
	if code, _ := readCloseFrame(t, br); code != CloseProtocolError {
		t.Fatalf("unmasked: close %d", code)
	}
	expectEOF(t, br)

	// Not an upgrade: the handler answers 400.
	raw, rbr := dial(t, addr)
	io.WriteString(raw, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if resp, _ := readResponse(t, rbr); resp.StatusCode != 400 {
		t.Fatalf("bad upgrade: %d", resp.StatusCode)
	}
}

func TestWebSocketPingAndPongDeadline(t *testing.T) {
	h := wsHandler()
	opts := testOptions()
	opts.PingInterval = 40 * time.Millisecond
	s, addr := startServer(t, opts, h)
	_, br := wsDialPath(t, addr, "/hello")
	pings := 0
	for {
		f, err := readWSFrame(br)
		if err != nil {
			break // closed: we never answered
		}
		if f.Header.OpCode == ws.OpPing {
			pings++
		}
	}
	if pings < 1 {
		t.Fatalf("%d pings before close", pings)
	}
	waitFor(t, "deadline close", func() bool { return s.Stats().DeadlineCloses >= 1 })
}

// TestWebSocketPongUnreadByBusyLoop: a pong that reached the socket while
// the loop was busy elsewhere keeps the connection, even when the
// deadline sweep runs before the loop reads it (as on a loop with
// thousands of connections ready at once). The loop is held by a posted
// task, which runs the sweep itself once the pong is in the socket and
// the deadline has passed.
func TestWebSocketPongUnreadByBusyLoop(t *testing.T) {
	h := wsHandler()
	opts := testOptions()
	opts.Loops = 1
	opts.PingInterval = time.Second
	s, addr := startServer(t, opts, h)
	c, br := wsDialPath(t, addr, "/hello")
	upgraded := time.Now()
	for f := readFrame(t, br); f.Header.OpCode != ws.OpPing; f = readFrame(t, br) {
	}
	started, pongSent, swept := make(chan struct{}), make(chan struct{}), make(chan struct{})
	lp := s.loops[0]
	s.Post(0, func() {
		close(started)
		<-pongSent
		// Past the deadline: two intervals since the client was last
		// heard from by the loop (the upgrade), one since the ping.
		time.Sleep(time.Until(upgraded.Add(2*opts.PingInterval + 100*time.Millisecond)))
		lp.now = int64(time.Since(s.start))
		lp.sweep()
		close(swept)
	})
	<-started
	if err := ws.WriteFrame(c, ws.MaskFrame(ws.NewPongFrame(nil))); err != nil {
		t.Fatal(err)
	}
	close(pongSent)
	<-swept
	// The connection lives on: it is pinged again and answers.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := readWSFrame(br)
		if err != nil {
			t.Fatalf("closed after a pong the busy loop had not read: %v (deadline closes %d)", err, s.Stats().DeadlineCloses)
		}
		if f.Header.OpCode == ws.OpPing {
			break
		}
	}
	if n := s.Stats().DeadlineCloses; n != 0 {
		t.Fatalf("%d deadline closes", n)
	}
}

func TestWebSocketUpgradeThenPipelinedFrame(t *testing.T) {
	h := wsHandler()
	_, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	var frame bytes.Buffer
	ws.WriteFrame(&frame, ws.MaskFrame(ws.NewPingFrame([]byte("early"))))
	io.WriteString(c, "GET /hello HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"+frame.String())
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		t.Fatalf("got %q", status)
	}
	var accept string
	for {
		l, _ := br.ReadString('\n')
		if l == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(l, "Sec-WebSocket-Accept: "); ok {
			accept = strings.TrimSpace(v)
		}
	}
	if accept != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 1.3
		t.Fatalf("accept %q", accept)
	}
	for {
		f := readFrame(t, br)
		if f.Header.OpCode == ws.OpPong {
			if string(f.Payload) != "early" {
				t.Fatalf("pong %q", f.Payload)
			}
			break
		}
	}
}

func TestSlowConsumerCut(t *testing.T) {
	h := newTestHandler()
	sent := make(chan int, 1)
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/flood" {
			return false
		}
		c.StartStream("text/event-stream", nil)
		c.SetTag("sse")
		frame := bytes.Repeat([]byte("d"), 64<<10)
		n := 0
		for n < 100000 && c.Send(frame) {
			n++
		}
		sent <- n
		if c.Send(frame) || c.Alive() {
			panic("cut connection still takes data")
		}
		return true
	}
	opts := testOptions()
	opts.MaxOutbound = 256 << 10
	s, addr := startServer(t, opts, h)
	c, _ := dial(t, addr)
	io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
	if n := <-sent; n >= 100000 {
		t.Fatal("never cut")
	}
	waitFor(t, "Closed", func() bool { n, _ := h.closedCount(); return n == 1 })
	if st := s.Stats(); st.SlowConsumerCuts != 1 || st.Streams != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStreamHeartbeat(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.StreamHeartbeatInterval = 20 * time.Millisecond
	_, addr := startServer(t, opts, h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
	var head []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "\r\n" {
			break
		}
		head = append(head, strings.TrimSpace(l))
	}
	joined := strings.Join(head, "|")
	if !strings.HasPrefix(joined, "HTTP/1.1 200 OK|Content-Type: text/event-stream|Connection: close|") ||
		!strings.Contains(joined, "Cache-Control: no-store") || strings.Contains(joined, "Content-Length") {
		t.Fatalf("head %q", joined)
	}
	for i := 0; i < 2; i++ {
		b := make([]byte, 6)
		if _, err := io.ReadFull(br, b); err != nil || string(b) != ": hb\n\n" {
			t.Fatalf("heartbeat %q %v", b, err)
		}
	}
}

// TestBeacon: a WebSocket that asked for a Beacon answers a client's text
// "ping" with WSBeacon; other text frames, and any text on a connection
// that did not ask, stay unanswered.
func TestBeacon(t *testing.T) {
	h := newTestHandler()
	h.serveFn = func(c Conn, r *Request) bool {
		if string(r.Path) != "/wsb" && string(r.Path) != "/wsn" {
			return false
		}
		if err := c.UpgradeWebSocket(r, []byte("X-Test: 1\r\n")); err != nil {
			panic(err)
		}
		c.SetTag("ws")
		if string(r.Path) == "/wsb" {
			c.Beacon()
		}
		return true
	}
	_, addr := startServer(t, testOptions(), h)
	c, br := wsDialPath(t, addr, "/wsb")
	writeClientFrame(t, c, ws.NewTextFrame([]byte("pong")))
	writeClientFrame(t, c, ws.NewTextFrame([]byte("ping")))
	if f := readFrame(t, br); f.Header.OpCode != ws.OpText || string(f.Payload) != `{"pong":true}` {
		t.Fatalf("answer to ping: %v %q", f.Header.OpCode, f.Payload)
	}
	// Without Beacon the same text is ignored: the next frame is the
	// answer to a control ping.
	c2, br2 := wsDialPath(t, addr, "/wsn")
	writeClientFrame(t, c2, ws.NewTextFrame([]byte("ping")))
	writeClientFrame(t, c2, ws.NewPingFrame([]byte("p")))
	if f := readFrame(t, br2); f.Header.OpCode != ws.OpPong {
		t.Fatalf("got %v %q, want only the pong", f.Header.OpCode, f.Payload)
	}
}

func TestAppendFrames(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("a"), n)
		f, err := readWSFrame(bytes.NewReader(AppendTextFrame(nil, payload)))
		if err != nil || f.Header.OpCode != ws.OpText || !f.Header.Fin || len(f.Payload) != n {
			t.Fatalf("n=%d: %v %+v", n, err, f.Header)
		}
	}
	f, _ := readWSFrame(bytes.NewReader(AppendCloseFrame(nil, 1001, "restart")))
	if code, reason := ws.ParseCloseFrameData(f.Payload); code != 1001 || reason != "restart" {
		t.Fatalf("close %d %q", code, reason)
	}
	f, _ = readWSFrame(bytes.NewReader(AppendPingFrame(nil, []byte("x"))))
	if f.Header.OpCode != ws.OpPing || string(f.Payload) != "x" {
		t.Fatalf("ping %+v", f.Header)
	}
	dst := make([]byte, 0, 256)
	payload := []byte(`{"identifier":"chat","id":1,"data":"hi"}`)
	if a := testing.AllocsPerRun(100, func() { dst = AppendTextFrame(dst[:0], payload) }); a != 0 {
		t.Fatalf("AppendTextFrame: %v allocs", a)
	}
}

// sendFixture opens a WebSocket whose client drains everything, and
// returns the server side Conn.
func sendFixture(tb testing.TB) (*Server, Conn) {
	h := newTestHandler()
	got := make(chan Conn, 1)
	h.serveFn = func(c Conn, r *Request) bool {
		if err := c.UpgradeWebSocket(r, []byte("X-Test: 1\r\n")); err != nil {
			panic(err)
		}
		got <- c
		return true
	}
	return startSendServer(tb, h, got)
}

func startSendServer(tb testing.TB, h *testHandler, got chan Conn) (*Server, Conn) {
	s, err := New(testOptions(), h, nil)
	if err != nil {
		tb.Fatal(err)
	}
	h.srv = s
	go s.Run()
	<-s.Ready()
	tb.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(ctx, "ws://"+s.Addrs()[0].String()+"/")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	go io.Copy(io.Discard, c)
	return s, <-got
}

func TestSendAllocs(t *testing.T) {
	s, c := sendFixture(t)
	frame := AppendTextFrame(nil, []byte(`["tick","a message of about a hundred bytes, as in the fan-out benchmark ........."]`))
	done := make(chan float64)
	s.Post(c.Loop(), func() {
		c.Send(frame)
		done <- testing.AllocsPerRun(1000, func() {
			if !c.Send(frame) {
				panic("send failed")
			}
		})
	})
	if a := <-done; a != 0 {
		t.Fatalf("Send: %v allocs", a)
	}
}

func BenchmarkSend(b *testing.B) {
	s, c := sendFixture(b)
	frame := AppendTextFrame(nil, make([]byte, 100))
	done := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	s.Post(c.Loop(), func() {
		for i := 0; i < b.N; i++ {
			c.Send(frame)
		}
		close(done)
	})
	<-done
}

func TestParseFrameHeader(t *testing.T) {
	mk := func(h ws.Header) []byte {
		var b bytes.Buffer
		if err := ws.WriteHeader(&b, h); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	mask := [4]byte{1, 2, 3, 4}
	cases := []struct {
		name    string
		in      []byte
		verdict uint16
		length  int
	}{
		{"text small", mk(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask, Length: 5}), 0, 5},
		{"text 16-bit", mk(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask, Length: 300}), 0, 300},
		{"at limit", mk(ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask, Length: 1000}), 0, 1000},
		{"over limit 16-bit", mk(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask, Length: 1001}), CloseTooBig, 0},
		{"over limit 64-bit", mk(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask, Length: 1 << 40}), CloseTooBig, 0},
		{"unmasked", mk(ws.Header{Fin: true, OpCode: ws.OpText, Length: 5}), CloseProtocolError, 0},
		{"rsv", mk(ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpText, Masked: true, Mask: mask}), CloseProtocolError, 0},
		{"opcode 3", mk(ws.Header{Fin: true, OpCode: 3, Masked: true, Mask: mask}), CloseProtocolError, 0},
		{"fragmented ping", mk(ws.Header{OpCode: ws.OpPing, Masked: true, Mask: mask}), CloseProtocolError, 0},
		{"big ping", mk(ws.Header{Fin: true, OpCode: ws.OpPing, Masked: true, Mask: mask, Length: 126}), CloseProtocolError, 0},
		{"short", []byte{0x81}, frameNeedMore, 0},
		{"short mask", mk(ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask, Length: 300})[:5], frameNeedMore, 0},
	}
	for _, tc := range cases {
		fh, v := parseFrameHeader(tc.in, 1000)
		if v != tc.verdict || v == 0 && (fh.length != tc.length || fh.headerLen != len(tc.in) || fh.mask != mask) {
			t.Errorf("%s: verdict %d %+v", tc.name, v, fh)
		}
	}
}

func FuzzParseFrameHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x89, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		fh, v := parseFrameHeader(in, 1<<16)
		if v != 0 {
			return
		}
		// A header we accept is one gobwas/ws reads the same way.
		h, err := ws.ReadHeader(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("accepted, gobwas: %v", err)
		}
		if int(h.Length) != fh.length || h.OpCode != fh.op || h.Mask != fh.mask || !h.Masked || fh.length > 1<<16 {
			t.Fatalf("mismatch: %+v vs %+v", fh, h)
		}
	})
}

// BenchmarkFanoutSend sends one prebuilt 100-byte frame to 500
// WebSockets of one loop per op, as a fan-out does; the draining clients
// run in the same process.
func BenchmarkFanoutSend(b *testing.B) {
	for _, burst := range []int{1, 10} {
		for _, gather := range []bool{true, false} {
			b.Run(fmt.Sprintf("burst=%d/gather=%v", burst, gather), func(b *testing.B) { benchFanout(b, burst, gather) })
		}
	}
}

// benchFanout sends burst frames to each of 500 real WebSockets per
// operation, as burst fan-out tasks queued together (messages arriving
// faster than one wake-up delivers them).
func benchFanout(b *testing.B, burst int, gather bool) {
	const subs = 500
	h := newTestHandler()
	conns := upgradeAll(h, subs)
	opts := testOptions()
	opts.Loops = 1
	s, err := New(opts, h, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.noGather = !gather
	go s.Run()
	<-s.Ready()
	b.Cleanup(func() { s.Shutdown(context.Background()) })
	var all []Conn
	for i := 0; i < subs; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, _, err := ws.Dial(ctx, "ws://"+s.Addrs()[0].String()+"/")
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		go io.Copy(io.Discard, c)
		all = append(all, <-conns)
	}
	frame := AppendTextFrame(nil, make([]byte, 100))
	send := func() {
		for _, c := range all {
			c.Send(frame)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		done := make(chan struct{})
		for range burst - 1 {
			s.Post(0, send)
		}
		s.Post(0, func() { send(); close(done) })
		<-done
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs*burst), "ns/delivery")
}

// TestClosedWhenClosingStarts: a WebSocket the server closes for a
// protocol error lingers for the peer's FIN (up to lingerTimeout), but
// Handler.Closed comes at once, so what the handler holds for it (a
// listener slot) is not kept by a peer that never closes its side. Once
// the socket is finally gone, Closed does not come again.
func TestClosedWhenClosingStarts(t *testing.T) {
	h := newTestHandler()
	srv, addr := startServer(t, testOptions(), h)
	c, br := wsDialPath(t, addr, "/ws")
	defer c.Close()
	// An unmasked frame: close 1002, then the server waits for our FIN,
	// which this test does not send.
	if err := ws.WriteFrame(c, ws.NewTextFrame([]byte("plain"))); err != nil {
		t.Fatal(err)
	}
	if code, _ := readCloseFrame(t, br); code != CloseProtocolError {
		t.Fatalf("unmasked: close %d", code)
	}
	waitFor(t, "Closed", func() bool {
		conns, _ := h.closedCount()
		return conns == 1
	})
	if open := srv.Stats().OpenConns; open != 1 {
		t.Fatalf("Closed came only once the socket was gone (%d open)", open)
	}
	c.Close()
	time.Sleep(50 * time.Millisecond) // let the server see the FIN
	if conns, calls := h.closedCount(); conns != 1 || calls != 1 {
		t.Fatalf("Closed: %d connections, %d calls; want 1 and 1", conns, calls)
	}
}
