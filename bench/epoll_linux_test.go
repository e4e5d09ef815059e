//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// socketConn is one end of a socket pair as a net.Conn.
func socketConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "pair")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEpollReader(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := socketConn(t, fds[0]), socketConn(t, fds[1])
	defer srv.Close()
	f := &fanState{kind: cfKind{}, msgs: 4, subs: []*fanSub{newFanSub(4), newFanSub(4)}}
	var st clientStats
	e, err := newEpollSubs(epollOptions{Readers: 1, OnData: func(c *epConn, p []byte, now int64) int64 {
		return f.onFrameAt(c.idx, p, now)
	}}, &st)
	if err != nil {
		t.Fatal(err)
	}
	push := func(seq int, id int64) []byte {
		p := fanPayload(seq, time.Now().UnixNano(), 20)
		return srvFrame(true, 1, []byte(`{"identifier":"a0","id":`+strconv.FormatInt(id, 10)+`,"data":"`+string(p)+`"}`), nil)
	}
	// What the handshake's reader took past the 101 is parsed first: the
	// resume point and half of the first push.
	first := append(srvFrame(true, 1, []byte(`{"since":"a0:0"}`), nil), push(0, 1)...)
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(first[:len(first)-5]), cli))
	br.Peek(len(first) - 5)
	st.open.Add(1)
	f.opened(1)
	if err := e.add(1, cli, br); err != nil {
		t.Fatal(err)
	}
	srv.Write(first[len(first)-5:])
	srv.Write(append(append(push(1, 2), srvFrame(true, 9, []byte("hi"), nil)...), push(1, 2)...)) // a duplicate
	pong := make([]byte, 8)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(srv, pong); err != nil || !bytes.Equal(pong, []byte{0x8A, 0x82, 0, 0, 0, 0, 'h', 'i'}) {
		t.Fatalf("pong %x %v", pong, err)
	}
	srv.Write(append(push(3, 4), srvFrame(true, 1, []byte("garbage"), nil)...))
	srv.Write(srvFrame(true, 8, []byte{3, 232}, nil))
	echo := make([]byte, 8)
	if _, err := io.ReadFull(srv, echo); err != nil || !bytes.Equal(echo, []byte{0x88, 0x82, 0, 0, 0, 0, 3, 232}) {
		t.Fatalf("close echo %x %v", echo, err)
	}
	for deadline := time.Now().Add(10 * time.Second); st.closed.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not closed")
		}
	}
	s := f.subs[1]
	if s.got != 3 || s.dup != 1 || s.order != 0 || s.missing(4) != 1 || f.bad.Load() != 1 || st.msgs.Load() != 5 || st.open.Load() != 0 {
		t.Fatalf("got %d dup %d order %d missing %d bad %d msgs %d open %d", s.got, s.dup, s.order, s.missing(4), f.bad.Load(), st.msgs.Load(), st.open.Load())
	}
	if n := e.held(); n != 0 {
		t.Fatalf("%d connections still held", n)
	}
}

// held counts the connections e holds.
func (e *epollSubs) held() int {
	n := 0
	for i := range e.conns {
		if e.conns[i].Load() != nil {
			n++
		}
	}
	return n
}

// heldPair is a connection handed to e as connection idx: the client end
// of a socket pair, with first already read past the handshake (in br).
// It returns the server end, read through its own reader.
func heldPair(t *testing.T, e *epollSubs, st *clientStats, idx int, first []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := socketConn(t, fds[0]), socketConn(t, fds[1])
	t.Cleanup(func() { srv.Close() })
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(first), cli))
	if len(first) > 0 {
		br.Peek(len(first))
	}
	st.open.Add(1)
	if err := e.add(idx, cli, br); err != nil {
		t.Fatal(err)
	}
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	return srv, bufio.NewReader(srv)
}

// until waits (bounded) for cond.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// TestEpollIdleWebSocket: the idle client's WebSocket connections on an
// epoll reader count deliveries as wsHoldDeliveries does (resume points
// and gap signals are none; a connection counts as reached once),
// answer pings and end on a close.
func TestEpollIdleWebSocket(t *testing.T) {
	var st clientStats
	e, err := newEpollSubs(epollOptions{Readers: 1, OnData: idleWSData(ezKind{}, &st)}, &st)
	if err != nil {
		t.Fatal(err)
	}
	msg := srvFrame(true, 1, []byte(`["5","p.1"]`), nil)
	// The handshake's reader took a gap signal and half of the push.
	first := append(srvFrame(true, 1, []byte(`{"gap":true}`), nil), msg[:4]...)
	srv, sr := heldPair(t, e, &st, 3, first)
	srv.Write(append(msg[4:], srvFrame(true, 9, []byte("hi"), nil)...))
	pong := make([]byte, 8)
	if _, err := io.ReadFull(sr, pong); err != nil || !bytes.Equal(pong, []byte{0x8A, 0x82, 0, 0, 0, 0, 'h', 'i'}) {
		t.Fatalf("pong %x %v", pong, err)
	}
	// st.msgs is added to at the end of the reader's batch of reads.
	until(t, "the first delivery", func() bool { return st.got.Load() == 1 && st.msgs.Load() == 1 })
	if st.last.Load() == 0 {
		t.Fatal("no time of the last delivery")
	}
	// More on the same connection: deliveries, not one more reached.
	srv.Write(append(srvFrame(false, 1, []byte(`["6","p`), nil), srvFrame(true, 0, []byte(`.2"]`), nil)...))
	srv2, _ := heldPair(t, e, &st, 4, nil)
	srv2.Write(msg)
	until(t, "the other deliveries", func() bool { return st.msgs.Load() == 3 })
	if st.got.Load() != 2 {
		t.Fatalf("reached %d connections", st.got.Load())
	}
	srv.Write(srvFrame(true, 8, []byte{3, 232}, nil))
	echo := make([]byte, 8)
	if _, err := io.ReadFull(sr, echo); err != nil || !bytes.Equal(echo, []byte{0x88, 0x82, 0, 0, 0, 0, 3, 232}) {
		t.Fatalf("close echo %x %v", echo, err)
	}
	until(t, "the close", func() bool { return st.closed.Load() == 1 })
	srv2.Close()
	until(t, "the end of stream", func() bool { return st.closed.Load() == 2 })
	if st.open.Load() != 0 || e.held() != 0 || *st.firstLoss.Load() != "closed by the server" {
		t.Fatalf("open %d held %d loss %q", st.open.Load(), e.held(), *st.firstLoss.Load())
	}
}

// TestEpollLongPoll: a long-poll on an epoll reader. Each answer is
// counted and the next poll sent from the reader, resuming where the
// answer says (tick, since, ETag and Last-Modified); an answer split
// between the handshake's reader and the socket, a timeout answer, a
// chunked one; a refusal ends the connection with its reason.
func TestEpollLongPoll(t *testing.T) {
	for _, tc := range []struct {
		kind, qname string
		answers     []string // bodies of the 200 answers
		next        []string // the path each answer asks for next
	}{
		{"halley", "u-c", []string{`{"code":"ok","messages":[["t1","m"]]}`, `{"code":"ok","messages":[["t1","m"],["t2","n"]]}`},
			[]string{"/read?qname=u-c2&timeout=120&tick=t1", "/read?qname=u-c2&timeout=120&tick=t2"}},
		{"cometify", "uc", []string{`{"code":"ok","pushes":[{"identifier":"uc2","id":3,"data":"m"}],"since":"uc2:3"}`, `{"code":"ok","pushes":[{"identifier":"uc2","id":4,"data":"n"}],"since":"uc2:4"}`},
			[]string{"/K/poll?identifiers=uc2%3A3&timeout=120", "/K/poll?identifiers=uc2%3A4&timeout=120"}},
	} {
		c := clientConfig{Kind: tc.kind, Mode: "longpoll", QName: tc.qname, Key: "K", Channels: 5, Timeout: 120}
		var st clientStats
		e, err := newEpollSubs(epollOptions{Readers: 2, Poll: &lpPoll{c: &c, host: "h:1"}}, &st)
		if err != nil {
			t.Fatal(err)
		}
		poll := func(sr *bufio.Reader, path, inm string) {
			t.Helper()
			req, err := http.ReadRequest(sr)
			if err != nil || req.URL.RequestURI() != path || req.Host != "h:1" || req.Header.Get("If-None-Match") != inm {
				t.Fatalf("%s: next poll %v %v (want %s, If-None-Match %q)", tc.kind, err, req, path, inm)
			}
		}
		a0 := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(tc.answers[0]), tc.answers[0])
		srv, sr := heldPair(t, e, &st, 7, []byte(a0[:20]))
		srv.Write([]byte(a0[20:]))
		poll(sr, tc.next[0], "")
		// st.msgs is added to at the end of the reader's batch of reads.
		until(t, "the first answer counted", func() bool { return st.msgs.Load() == 1 })
		if st.got.Load() != 1 || st.last.Load() == 0 {
			t.Fatalf("%s: got %d msgs %d last %d", tc.kind, st.got.Load(), st.msgs.Load(), st.last.Load())
		}
		// The timeout's answer: the same poll again.
		srv.Write([]byte("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"))
		poll(sr, tc.next[0], "")
		a1 := tc.answers[1]
		fmt.Fprintf(srv, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: \"e1\"\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 5, a1[:5], len(a1)-5, a1[5:])
		poll(sr, tc.next[1], `"e1"`)
		until(t, "the second answer counted", func() bool { return st.msgs.Load() == 2 })
		if st.got.Load() != 1 || st.closed.Load() != 0 {
			t.Fatalf("%s: got %d msgs %d closed %d", tc.kind, st.got.Load(), st.msgs.Load(), st.closed.Load())
		}
		srv.Write([]byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}"))
		until(t, "the refusal to end the poll", func() bool { return st.closed.Load() == 1 })
		if _, err := sr.ReadByte(); err != io.EOF {
			t.Fatalf("%s: the server end is still open: %v", tc.kind, err)
		}
		if st.open.Load() != 0 || e.held() != 0 || *st.firstLoss.Load() != "long-poll: status 401" {
			t.Fatalf("%s: open %d held %d loss %q", tc.kind, st.open.Load(), e.held(), *st.firstLoss.Load())
		}
		// An answer that says the server closes: counted, then the end.
		srv, _ = heldPair(t, e, &st, 8, nil)
		fmt.Fprintf(srv, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(tc.answers[0]), tc.answers[0])
		until(t, "the closing answer", func() bool { return st.closed.Load() == 2 && st.msgs.Load() == 3 })
		if st.got.Load() != 2 {
			t.Fatalf("%s: got %d msgs %d", tc.kind, st.got.Load(), st.msgs.Load())
		}
	}
}
