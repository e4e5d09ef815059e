package conformance

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// C-13: the server's WebSocket endpoints follow RFC 6455 as the Autobahn
// TestSuite's sections 1–7 check it. Halley ignores what clients send in
// data frames, so nothing is echoed: a frame the server must accept is
// followed by a ping whose pong proves the server read it whole and is
// still in step, and a connection that survived a section must still get
// a message delivered to it. A frame the server must refuse is followed
// (in the same write) by a ping that must not be answered, and the server
// must close with the right code, send nothing after its close frame and
// close the TCP connection. Each section runs on both endpoints, each with
// a neighbour listener that must still be served at the end.

// Opcodes and close codes, written here rather than taken from a library
// so that the suite can send what no library would.
const (
	opCont  byte = 0x0
	opText  byte = 0x1
	opBin   byte = 0x2
	opClose byte = 0x8
	opPing  byte = 0x9
	opPong  byte = 0xA

	closeNone        = 0 // a close frame without a payload
	closeNormal      = 1000
	closeProtocol    = 1002
	closeInvalidData = 1007
	closeTooBig      = 1009

	// RSV bits as they stand in the first header byte, shifted right by 4.
	rsv1 byte = 4
	rsv2 byte = 2
	rsv3 byte = 1
)

func rfc6455Cases() []ruleCase {
	return []ruleCase{
		{rule: "C-13", what: "handshake: Sec-WebSocket-Key not base64 of 16 bytes → JSON 400, Sec-WebSocket-Version other than 13 → 426 with Sec-WebSocket-Version: 13 (both endpoints)", run: checkWSHandshake},
		{rule: "C-13", what: "§1 framing: text and binary frames of 0, 125, 126, 127, 65535, 65536 bytes up to --max-frame-bytes, split headers and payloads accepted; one byte more → 1009; unmasked → 1002", run: checkWSFraming},
		{rule: "C-13", what: "§2 ping/pong: pings answered with their payload (0, binary, 125 bytes, chopped, 10 in a row), a 126-byte ping → 1002, unsolicited pongs ignored", run: checkWSPingPong},
		{rule: "C-13", what: "§3 reserved bits: RSV1, RSV2, RSV3 on text, binary, ping and close frames → 1002, nothing answered after", run: checkWSReservedBits},
		{rule: "C-13", what: "§4 opcodes: reserved data opcodes 3–7 and control opcodes 11–15 → 1002, nothing answered after", run: checkWSOpcodes},
		{rule: "C-13", what: "§5 fragmentation: fragmented messages with pings between fragments answered; continuation without a start, a new data frame inside a message, fragmented ping or pong → 1002", run: checkWSFragmentation},
		{rule: "C-13", what: "§6 UTF-8: valid multi-byte text (also split across fragments) accepted; invalid bytes, overlongs, surrogates, code points above U+10FFFF, truncated and invalid split sequences → 1007", run: checkWSUTF8},
		{rule: "C-13", what: "§7 close: empty close and valid codes (1000–1003, 1007–1011, 3000–4999) echoed; a 1-byte payload, codes 0, 999, 1004–1006, 1012–1016, 2999, 5000… and a 126-byte close → 1002; invalid UTF-8 reason → 1007; nothing after a close", run: checkWSClose},
	}
}

// wsEndpoint is one WebSocket endpoint of the server and a way to make the
// server send one data frame to every reader of it.
type wsEndpoint struct {
	name string
	path string
	// deliver makes the server send a data frame to the endpoint's readers
	// and returns a marker the frame carries.
	deliver func() string
}

// wsEndpoints are the EZComet reader and the Cometify listener, each on a
// fresh channel or identifier of this case.
func (t *caseT) wsEndpoints() []wsEndpoint {
	q, x := t.qname(), ident()
	return []wsEndpoint{
		{name: "EZComet /read/ws", path: readPath("/read/ws", q, "", -1), deliver: func() string {
			m := "mark" + randHex(12)
			t.writeMsg(q, m, "")
			return m
		}},
		{name: "Cometify /listen", path: listenerPath(t.cfg.Account, viaWS, x), deliver: func() string {
			m := "mark" + randHex(12)
			t.push(x, m)
			return m
		}},
	}
}

// eachWSEndpoint runs check on both endpoints at once. Each endpoint gets
// a neighbour listener, opened first and left alone, that must still be
// open and served after the check: refusing one client's frames must not
// touch another's connection.
func (t *caseT) eachWSEndpoint(check func(e *wsEnv)) {
	var fns []func()
	for _, ep := range t.wsEndpoints() {
		fns = append(fns, func() {
			nb := t.mustWS(ep.path)
			nb.start()
			e := &wsEnv{t: t, ep: ep}
			check(e)
			if e.keep != nil {
				e.keep.delivered("the connection that passed every check")
				e.keep.w.close()
			}
			m := ep.deliver()
			for {
				f, ok := nb.next(5 * time.Second)
				switch {
				case !ok:
					t.Fatalf("%s: a neighbour listener opened before the checks did not get a message sent after them", ep.name)
				case f.err != nil:
					t.Fatalf("%s: a neighbour listener lost its connection during the checks: %v", ep.name, f.err)
				case f.op == ws.OpClose:
					t.Fatalf("%s: a neighbour listener was closed during the checks (%d %q)", ep.name, f.code, f.reason)
				}
				if bytes.Contains(f.payload, []byte(m)) {
					nb.close()
					return
				}
			}
		})
	}
	t.parallel(fns...)
}

// wsEnv runs the checks of one section on one endpoint.
type wsEnv struct {
	t  *caseT
	ep wsEndpoint
	// keep is the connection that survives checks are run on; it must get
	// a delivery at the end.
	keep *rawWS
}

// conn is the connection survives uses, opened on first use.
func (e *wsEnv) conn() *rawWS {
	if e.keep == nil {
		e.keep = e.t.rawWS(e.ep)
	}
	return e.keep
}

// survives sends frames (one write) on the kept connection: the server must
// accept them, which a ping answered after them shows.
func (e *wsEnv) survives(what string, frames ...[]byte) {
	c := e.conn()
	c.what = what
	c.send(bytes.Join(frames, nil))
	c.alive()
}

// survivesChopped is survives with the bytes sent chop bytes at a time, so
// that headers and payloads arrive split across reads.
func (e *wsEnv) survivesChopped(what string, chop int, frames ...[]byte) {
	c := e.conn()
	c.what = what
	c.sendChopped(bytes.Join(frames, nil), chop)
	c.alive()
}

// fails sends frames on a fresh connection, followed by a ping, in one
// write or chop bytes at a time: the server must close with one of codes,
// answer nothing after the offending frame, and close the connection.
func (e *wsEnv) fails(what string, codes []int, chop int, frames ...[]byte) {
	c := e.t.rawWS(e.ep)
	c.what = what
	b := append(bytes.Join(frames, nil), pingFrame(probePrefix+randHex(8))...)
	if chop > 0 {
		c.sendChopped(b, chop)
	} else {
		c.send(b)
	}
	c.expectClose(codes...)
}

// failsWith is fails for one close code and one write.
func (e *wsEnv) failsWith(what string, code int, frames ...[]byte) {
	e.fails(what, []int{code}, 0, frames...)
}

// probePrefix starts the payload of a ping the server must not answer: one
// sent after a frame it must refuse, or one that is itself refused. A pong
// carrying it means the server read on.
const probePrefix = "after-"

// rawWS is a WebSocket client that writes exact bytes and reads the server's
// frames one by one (no reassembly), answering the server's pings until it
// has sent a close itself.
type rawWS struct {
	t    *caseT
	ep   wsEndpoint
	w    *wireConn
	what string // the check in progress, for failure details
	// sentClose: the client sent a close; it answers nothing after it.
	sentClose bool
}

// rawWS opens a WebSocket to ep with the suite's ordinary handshake.
func (t *caseT) rawWS(ep wsEndpoint) *rawWS {
	c := t.mustWS(ep.path)
	return &rawWS{t: t, ep: ep, w: c.w}
}

// srvFrame is one frame as the server sent it.
type srvFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

// clientFrame builds one masked client frame; rsv holds RSV1–3 as the bits
// 4, 2, 1.
func clientFrame(fin bool, rsv, op byte, payload []byte) []byte {
	return buildFrame(fin, rsv, op, payload, true)
}

// buildFrame builds one frame, masked with a random key when masked.
func buildFrame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	b0 := rsv<<4 | op&0x0f
	if fin {
		b0 |= 0x80
	}
	var mbit byte
	if masked {
		mbit = 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = append(out, mbit|126, byte(n>>8), byte(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	out = append(out, key[:]...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

// closeFrame builds a masked close frame with code and reason; code 0 is
// sent as 0 (a close without payload is clientFrame(…, opClose, nil)).
func closeFrame(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return clientFrame(true, 0, opClose, append(p, reason...))
}

// textFrame, binFrame and pingFrame build final frames.
func textFrame(s string) []byte { return clientFrame(true, 0, opText, []byte(s)) }
func binFrame(b []byte) []byte  { return clientFrame(true, 0, opBin, b) }
func pingFrame(s string) []byte { return clientFrame(true, 0, opPing, []byte(s)) }

func (c *rawWS) fail(format string, args ...any) {
	c.t.Fatalf("%s, %s: %s", c.ep.name, c.what, fmt.Sprintf(format, args...))
}

// send writes b in one write. A server that refuses a frame may close
// before reading what follows it, so write errors are left to the reads
// that follow.
func (c *rawWS) send(b []byte) {
	_ = c.w.c.SetWriteDeadline(c.t.within(defaultWait))
	_, _ = c.w.c.Write(b)
}

// sendChopped writes b chop bytes at a time with a short pause between
// writes, so that the server reads it in pieces.
func (c *rawWS) sendChopped(b []byte, chop int) {
	for i := 0; i < len(b); i += chop {
		c.send(b[i:min(i+chop, len(b))])
		time.Sleep(time.Millisecond)
	}
}

// read reads one server frame within d (scaled) and checks what RFC 6455
// requires of it: unmasked, no RSV bits, a known opcode, control frames
// final and at most 125 bytes.
func (c *rawWS) read(d time.Duration) (srvFrame, error) {
	_ = c.w.c.SetReadDeadline(c.t.within(d))
	var h [2]byte
	if _, err := io.ReadFull(c.w.br, h[:]); err != nil {
		return srvFrame{}, err
	}
	f := srvFrame{fin: h[0]&0x80 != 0, rsv: h[0] >> 4 & 7, op: h[0] & 0x0f}
	if h[1]&0x80 != 0 {
		c.fail("the server sent a masked frame (RFC 6455 5.1)")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(c.w.br, e[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(c.w.br, e[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	if n > 16<<20 {
		c.fail("the server sent a frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.w.br, f.payload); err != nil {
		return f, err
	}
	switch {
	case f.rsv != 0:
		c.fail("the server sent a frame with RSV bits %03b", f.rsv)
	case f.op >= 3 && f.op <= 7 || f.op >= 11:
		c.fail("the server sent a frame with reserved opcode %d", f.op)
	case f.op >= 8 && (!f.fin || n > 125):
		c.fail("the server sent a control frame (opcode %d) of %d bytes, final %v", f.op, n, f.fin)
	}
	return f, nil
}

// next reads the next frame that is not a ping of the server's own, which
// it answers (until the client sent a close). An error or a timeout fails
// the check with want in the detail.
func (c *rawWS) next(d time.Duration, want string) srvFrame {
	for {
		f, err := c.read(d)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.fail("want %s, nothing came within %v", want, c.t.cfg.scaled(d))
			}
			c.fail("want %s, the connection ended: %v", want, err)
		}
		if f.op != opPing {
			return f
		}
		if !c.sentClose {
			c.send(clientFrame(true, 0, opPong, f.payload))
		}
	}
}

// expectPongs waits for pongs to pings with the given payloads. Pongs
// must come in the pings' order; RFC 6455 5.5.3 lets a server answer only
// the most recent of several pings, so only the last must be answered.
// Data frames (live deliveries) may come between.
func (c *rawWS) expectPongs(payloads ...[]byte) {
	next := 0
	for {
		want := fmt.Sprintf("a pong with payload %q", clip(payloads[len(payloads)-1]))
		f := c.next(5*time.Second, want)
		switch f.op {
		case opClose:
			code, reason := c.parseClose(f.payload)
			c.fail("want %s, the server closed with %d %q", want, code, reason)
		case opPong:
			if bytes.HasPrefix(f.payload, []byte(probePrefix)) {
				c.fail("the server answered a ping sent after a frame it had to refuse")
			}
			i := next
			for i < len(payloads) && !bytes.Equal(payloads[i], f.payload) {
				i++
			}
			if i == len(payloads) {
				c.fail("a pong with payload %q answers no ping of this check, or comes out of order (want %s)", clip(f.payload), want)
			}
			next = i + 1
			if next == len(payloads) {
				return
			}
		}
	}
}

// alive checks that the server still reads the connection in step: a ping
// is answered with its payload.
func (c *rawWS) alive() {
	p := []byte("alive-" + randHex(10))
	c.send(pingFrame(string(p)))
	c.expectPongs(p)
}

// delivered checks that the connection still gets what the server sends
// its readers.
func (c *rawWS) delivered(what string) {
	c.what = what
	m := c.ep.deliver()
	for {
		f := c.next(5*time.Second, "the message "+m+" written after the checks")
		switch f.op {
		case opClose:
			code, reason := c.parseClose(f.payload)
			c.fail("the server closed with %d %q instead of delivering %s", code, reason, m)
		case opText:
			if bytes.Contains(f.payload, []byte(m)) {
				return
			}
		}
	}
}

// parseClose reads a server close payload: no payload is code closeNone;
// one byte, or a reason that is not UTF-8, fails.
func (c *rawWS) parseClose(p []byte) (int, string) {
	switch {
	case len(p) == 0:
		return closeNone, ""
	case len(p) == 1:
		c.fail("the server sent a close frame with a 1-byte payload")
	case !utf8.Valid(p[2:]):
		c.fail("the server's close reason is not UTF-8: %q", p[2:])
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}

// expectClose waits for the server's close frame with one of codes
// (closeNone for none); no ping sent after a refused frame may be
// answered first. The client then answers the close (unless it sent one)
// and the server must send nothing more and close the connection.
func (c *rawWS) expectClose(codes ...int) {
	want := fmt.Sprintf("a close frame with code %v", codes)
	if len(codes) == 1 {
		want = fmt.Sprintf("a close frame with code %d", codes[0])
	}
	for {
		f := c.next(5*time.Second, want)
		switch f.op {
		case opPong:
			if bytes.HasPrefix(f.payload, []byte(probePrefix)) {
				c.fail("want %s; the server answered a ping sent after the frame it had to refuse", want)
			}
			continue
		case opClose:
		default:
			continue // a live delivery before the close
		}
		code, reason := c.parseClose(f.payload)
		ok := false
		for _, w := range codes {
			ok = ok || code == w
		}
		if !ok {
			c.fail("want %s, got close %d %q", want, code, reason)
		}
		break
	}
	if !c.sentClose {
		c.sentClose = true
		c.send(closeFrame(closeNormal, ""))
	}
	c.expectEnd()
}

// expectEnd checks that after its close frame the server sends nothing and
// closes the connection.
func (c *rawWS) expectEnd() {
	f, err := c.read(5 * time.Second)
	if err == nil {
		c.fail("after its close frame the server sent a frame with opcode %d (%q)", f.op, clip(f.payload))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.fail("the connection was still open %v after the server's close frame", c.t.cfg.scaled(5*time.Second))
	}
	// EOF or reset: closed.
}

// clientCloses sends frames that end with the client's close (in one
// write) and checks the server's answer: a close with one of codes, then
// nothing more.
func (e *wsEnv) clientCloses(what string, codes []int, frames ...[]byte) {
	c := e.t.rawWS(e.ep)
	c.what = what
	c.sentClose = true
	c.send(bytes.Join(frames, nil))
	c.expectClose(codes...)
}

func checkWSHandshake(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		hs := func(key, version string) *reply {
			h := []string{"Upgrade: websocket", "Connection: Upgrade"}
			if key != "-" {
				h = append(h, "Sec-WebSocket-Key: "+key)
			}
			return t.do("GET", e.ep.path, "", append(h, "Sec-WebSocket-Version: "+version)...)
		}
		for _, k := range []struct{ key, what string }{
			{"-", "no Sec-WebSocket-Key"},
			{"", "an empty Sec-WebSocket-Key"},
			{"AAAAAAAAAAAAAAAAAAAA", "a key of 15 bytes (20 base64 characters)"},
			{"AAAAAAAAAAAAAAAAAAAAAAA=", "a key of 17 bytes (24 base64 characters)"},
			{"AAAAAAAAAAAAAAAAAAAAAAAA", "a key of 18 bytes (24 base64 characters, no padding)"},
			{"!!!!!!!!!!!!!!!!!!!!!!==", "a 24-character key that is not base64"},
			{"dGhlIHNhbXBsZSBub25jZQ==AAAA", "a valid key with 4 more characters"},
		} {
			t.wantError(hs(k.key, "13"), 400, fmt.Sprintf("%s: upgrade with %s", e.ep.name, k.what))
		}
		for _, v := range []string{"8", "12", "14"} {
			r := hs("dGhlIHNhbXBsZSBub25jZQ==", v)
			t.wantError(r, 426, fmt.Sprintf("%s: upgrade with Sec-WebSocket-Version: %s", e.ep.name, v))
			if !headerHasToken(r.header.Values("Sec-WebSocket-Version"), "13") {
				t.Fatalf("%s: 426 to Sec-WebSocket-Version: %s must carry Sec-WebSocket-Version: 13, got %q", e.ep.name, v, r.header.Values("Sec-WebSocket-Version"))
			}
		}
		// After the refusals, an upgrade done right is served.
		e.conn()
	})
}

// headerHasToken reports whether any of the header values, each a
// comma-separated list, holds token.
func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == token {
				return true
			}
		}
	}
	return false
}

func checkWSFraming(t *caseT) {
	limit := t.cfg.MaxFrameBytes
	if limit > 16<<20 {
		t.Skipf("--limit-frame-bytes %d: the suite sends frames of at most 16 MiB", limit)
	}
	var sizes []int
	for _, n := range []int{0, 1, 125, 126, 127, 128, 65535, 65536} {
		if n < limit {
			sizes = append(sizes, n)
		}
	}
	sizes = append(sizes, limit)
	t.eachWSEndpoint(func(e *wsEnv) {
		for _, op := range []byte{opText, opBin} {
			for _, n := range sizes {
				p := bytes.Repeat([]byte("x"), n)
				if op == opBin {
					p = make([]byte, n)
					_, _ = rand.Read(p)
				}
				e.survives(fmt.Sprintf("a final frame with opcode %d and %d bytes", op, n), clientFrame(true, 0, op, p))
			}
		}
		big := min(65535, limit)
		e.survivesChopped(fmt.Sprintf("a %d-byte text frame sent 997 bytes at a time", big), 997, textFrame(strings.Repeat("y", big)))
		e.survivesChopped("a 126-byte text frame sent one byte at a time", 1, textFrame(strings.Repeat("z", 126)))
		if limit >= 65536 {
			c := e.conn()
			c.what = "a 65536-byte binary frame whose 14-byte header is sent one byte at a time"
			f := binFrame(make([]byte, 65536))
			c.sendChopped(f[:14], 1)
			c.send(f[14:])
			c.alive()
		}
		e.failsWith(fmt.Sprintf("a text frame of %d bytes (--limit-frame-bytes %d)", limit+1, limit), closeTooBig, textFrame(strings.Repeat("x", limit+1)))
		e.failsWith(fmt.Sprintf("a binary frame of %d bytes", limit+1), closeTooBig, binFrame(make([]byte, limit+1)))
		e.failsWith("an unmasked text frame", closeProtocol, buildFrame(true, 0, opText, []byte("hello"), false))
		e.failsWith("an unmasked ping", closeProtocol, buildFrame(true, 0, opPing, []byte(probePrefix+"unmasked"), false))
		e.failsWith("an unmasked frame after a masked one", closeProtocol, textFrame("ok"), buildFrame(true, 0, opText, nil, false))
	})
}

func checkWSPingPong(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		c := e.conn()
		pong := func(what string, payload []byte, chop int) {
			c.what = what
			if chop > 0 {
				c.sendChopped(clientFrame(true, 0, opPing, payload), chop)
			} else {
				c.send(clientFrame(true, 0, opPing, payload))
			}
			c.expectPongs(payload)
		}
		pong("a ping without payload", []byte{}, 0)
		pong("a ping with a text payload", []byte("Hello, world!"), 0)
		all := make([]byte, 125)
		for i := range all {
			all[i] = byte(i * 2)
		}
		pong("a ping with a binary payload", all[:100], 0)
		pong("a ping of 125 bytes", bytes.Repeat([]byte{0xfe}, 125), 0)
		pong("a ping of 125 bytes sent one byte at a time", all, 1)
		e.survives("an unsolicited pong without payload", clientFrame(true, 0, opPong, nil))
		e.survives("an unsolicited pong with payload", clientFrame(true, 0, opPong, []byte("unsolicited")))
		c.what = "an unsolicited pong, then a ping: the pong is not echoed, the ping answered"
		c.send(append(clientFrame(true, 0, opPong, []byte("pong-first")), pingFrame("ping-second")...))
		c.expectPongs([]byte("ping-second"))
		var ten [][]byte
		var burst []byte
		for i := range 10 {
			p := []byte(fmt.Sprintf("payload-%d-%s", i, randHex(4)))
			ten = append(ten, p)
			burst = append(burst, clientFrame(true, 0, opPing, p)...)
		}
		c.what = "10 pings in a row"
		c.send(burst)
		c.expectPongs(ten...)
		c.what = "10 pings in a row sent 7 bytes at a time"
		for i := range ten {
			ten[i] = []byte(fmt.Sprintf("chopped-%d-%s", i, randHex(4)))
		}
		burst = burst[:0]
		for _, p := range ten {
			burst = append(burst, clientFrame(true, 0, opPing, p)...)
		}
		c.sendChopped(burst, 7)
		c.expectPongs(ten...)
		e.failsWith("a ping of 126 bytes", closeProtocol, clientFrame(true, 0, opPing, []byte(probePrefix+strings.Repeat("p", 126-len(probePrefix)))))
		e.failsWith("a pong of 126 bytes", closeProtocol, clientFrame(true, 0, opPong, bytes.Repeat([]byte("p"), 126)))
	})
}

func checkWSReservedBits(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		e.failsWith("a text frame with RSV1", closeProtocol, clientFrame(true, rsv1, opText, []byte("Hello, world!")))
		e.failsWith("a valid text frame, then one with RSV2", closeProtocol, textFrame("fine"), clientFrame(true, rsv2, opText, []byte("Hello, world!")))
		e.failsWith("a text frame with RSV3 after a ping", closeProtocol, pingFrame("before"), clientFrame(true, rsv3, opText, []byte("x")))
		e.failsWith("a binary frame with RSV1 and RSV3", closeProtocol, clientFrame(true, rsv1|rsv3, opBin, []byte{0, 1, 2}))
		e.failsWith("a ping with RSV1 and RSV2", closeProtocol, clientFrame(true, rsv1|rsv2, opPing, []byte(probePrefix+"rsv")))
		e.failsWith("a close with RSV1, RSV2 and RSV3", closeProtocol, clientFrame(true, rsv1|rsv2|rsv3, opClose, []byte{0x03, 0xe8}))
		e.failsWith("a continuation with RSV2 inside a fragmented text", closeProtocol,
			clientFrame(false, 0, opText, []byte("frag")), clientFrame(true, rsv2, opCont, []byte("ment")))
	})
}

func checkWSOpcodes(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		for _, op := range []byte{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
			var p []byte
			if op%2 == 0 {
				p = []byte("reserved")
			}
			e.failsWith(fmt.Sprintf("a valid text frame, then a frame with reserved opcode %d (%d bytes)", op, len(p)), closeProtocol,
				textFrame("fine"), clientFrame(true, 0, op, p))
		}
	})
}

func checkWSFragmentation(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		e.survives("a text message in two fragments", clientFrame(false, 0, opText, []byte("frag")), clientFrame(true, 0, opCont, []byte("ment")))
		e.survives("a binary message in three fragments", clientFrame(false, 0, opBin, []byte{1}), clientFrame(false, 0, opCont, []byte{2}), clientFrame(true, 0, opCont, []byte{3}))
		e.survives("a text message of empty fragments", clientFrame(false, 0, opText, nil), clientFrame(false, 0, opCont, nil), clientFrame(true, 0, opCont, nil))
		e.survivesChopped("a text message in two fragments sent one byte at a time", 1,
			clientFrame(false, 0, opText, []byte("frag")), clientFrame(true, 0, opCont, []byte("ment")))

		// Control frames between fragments are answered at once, before
		// the message is complete.
		c := e.conn()
		c.what = "a ping between two fragments of a text message"
		c.send(append(clientFrame(false, 0, opText, []byte("one ")), pingFrame("between")...))
		c.expectPongs([]byte("between"))
		c.send(clientFrame(true, 0, opCont, []byte("two")))
		c.alive()
		c.what = "five fragments with two pings between them, sent apart"
		c.send(clientFrame(false, 0, opText, []byte("f1")))
		c.send(clientFrame(false, 0, opCont, []byte("f2")))
		c.send(pingFrame("between-1"))
		c.expectPongs([]byte("between-1"))
		c.t.sleep(200 * time.Millisecond)
		c.send(clientFrame(false, 0, opCont, []byte("f3")))
		c.send(append(clientFrame(false, 0, opCont, []byte("f4")), pingFrame("between-2")...))
		c.expectPongs([]byte("between-2"))
		c.t.sleep(200 * time.Millisecond)
		c.send(clientFrame(true, 0, opCont, []byte("f5")))
		c.alive()
		e.survives("an unsolicited pong between fragments", clientFrame(false, 0, opText, []byte("a")), clientFrame(true, 0, opPong, []byte("pong")), clientFrame(true, 0, opCont, []byte("b")))

		e.failsWith("a ping in two fragments", closeProtocol, clientFrame(false, 0, opPing, []byte(probePrefix+"frag")), clientFrame(true, 0, opCont, []byte("ment")))
		e.failsWith("a pong in two fragments", closeProtocol, clientFrame(false, 0, opPong, []byte("hello")), clientFrame(true, 0, opCont, []byte("world")))
		e.failsWith("a final continuation without a start", closeProtocol, clientFrame(true, 0, opCont, []byte("orphan")))
		e.failsWith("a non-final continuation without a start", closeProtocol, clientFrame(false, 0, opCont, []byte("orphan")), clientFrame(true, 0, opCont, []byte("s")))
		e.failsWith("a continuation after a complete message", closeProtocol, textFrame("whole"), clientFrame(true, 0, opCont, []byte("orphan")))
		e.failsWith("a text frame inside a fragmented text message", closeProtocol, clientFrame(false, 0, opText, []byte("frag")), clientFrame(true, 0, opText, []byte("ment")))
		e.failsWith("a non-final text frame inside a fragmented text message", closeProtocol, clientFrame(false, 0, opText, []byte("frag")), clientFrame(false, 0, opText, []byte("ment")))
		e.failsWith("a binary frame inside a fragmented text message", closeProtocol, clientFrame(false, 0, opText, []byte("frag")), clientFrame(true, 0, opBin, []byte("ment")))
		e.failsWith("a message, then a non-final continuation with nothing to continue", closeProtocol,
			clientFrame(false, 0, opText, []byte("frag")), clientFrame(true, 0, opCont, []byte("ment")),
			clientFrame(false, 0, opCont, []byte("orphan")), textFrame("after"))
		e.fails("a continuation without a start sent one byte at a time", []int{closeProtocol}, 1, clientFrame(true, 0, opCont, []byte("orphan")))
	})
}

// utf8Bad are text payloads that are not UTF-8 (RFC 3629), after the
// Autobahn TestSuite's section 6 and Markus Kuhn's decoder test.
var utf8Bad = []struct {
	what string
	b    []byte
}{
	{"κόσμε then a surrogate then edited", []byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64}},
	{"a lone continuation byte 0x80", []byte{0x80}},
	{"a continuation byte 0xbf between ASCII", []byte{'a', 0xbf, 'b'}},
	{"a 2-byte start followed by a space", []byte{0xc0, 0x20}},
	{"a 3-byte start followed by a space", []byte{0xe0, 0x20}},
	{"a 2-byte sequence cut at the end", []byte{'a', 0xce}},
	{"a 3-byte sequence cut at the end", []byte{0xe0, 0xa0}},
	{"a 4-byte sequence cut at the end", []byte{0xf0, 0x90, 0x80}},
	{"an overlong '/' in 2 bytes", []byte{0xc0, 0xaf}},
	{"the largest overlong in 2 bytes", []byte{0xc1, 0xbf}},
	{"an overlong '/' in 3 bytes", []byte{0xe0, 0x80, 0xaf}},
	{"the largest overlong in 3 bytes", []byte{0xe0, 0x9f, 0xbf}},
	{"an overlong '/' in 4 bytes", []byte{0xf0, 0x80, 0x80, 0xaf}},
	{"the largest overlong in 4 bytes", []byte{0xf0, 0x8f, 0xbf, 0xbf}},
	{"a 5-byte sequence", []byte{0xf8, 0x88, 0x80, 0x80, 0x80}},
	{"the surrogate U+D800", []byte{0xed, 0xa0, 0x80}},
	{"the surrogate U+DFFF", []byte{0xed, 0xbf, 0xbf}},
	{"a surrogate pair U+D800 U+DC00", []byte{0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80}},
	{"U+110000", []byte{0xf4, 0x90, 0x80, 0x80}},
	{"0xf5, a start byte above U+10FFFF", []byte{0xf5, 0x80, 0x80, 0x80}},
	{"U+1FFFFF in 4 bytes", []byte{0xf7, 0xbf, 0xbf, 0xbf}},
	{"the bytes 0xfe 0xfe 0xff 0xff", []byte{0xfe, 0xfe, 0xff, 0xff}},
}

// utf8Good are valid text payloads, edges included.
var utf8Good = []string{
	"", "Hello-µ@ßöäüàá-UTF-8!!", "κόσμε",
	"\u0080", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\ufffd", "\ufffe", "\uffff",
	"\U00010000", "\U0001F600", "\U0010FFFF",
}

func checkWSUTF8(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		for _, s := range utf8Good {
			e.survives(fmt.Sprintf("the text message %+q", s), textFrame(s))
		}
		// Every byte its own fragment: each multi-byte character is split.
		k := []byte("κόσμε 😀")
		var frames [][]byte
		for i, b := range k {
			op := opCont
			if i == 0 {
				op = opText
			}
			frames = append(frames, clientFrame(i == len(k)-1, 0, op, []byte{b}))
		}
		e.survives(`"κόσμε 😀" one byte per fragment`, frames...)
		c := e.conn()
		c.what = "😀 split 2+2 across fragments with a ping between"
		c.send(append(clientFrame(false, 0, opText, []byte{0xf0, 0x9f}), pingFrame("in-utf8")...))
		c.expectPongs([]byte("in-utf8"))
		c.send(clientFrame(true, 0, opCont, []byte{0x98, 0x80}))
		c.alive()
		e.survives("a binary message that is not UTF-8", binFrame([]byte{0xff, 0xfe, 0xc0, 0xaf, 0xed, 0xa0, 0x80}))
		c.what = "a ping whose payload is not UTF-8"
		c.send(pingFrame("\xff\xfe"))
		c.expectPongs([]byte("\xff\xfe"))

		for _, b := range utf8Bad {
			e.failsWith("a text message with "+b.what, closeInvalidData, clientFrame(true, 0, opText, b.b))
		}
		bad := utf8Bad[0].b
		var split [][]byte
		for i := range bad {
			op := opCont
			if i == 0 {
				op = opText
			}
			split = append(split, clientFrame(i == len(bad)-1, 0, op, bad[i:i+1]))
		}
		e.failsWith("κόσμε, a surrogate, edited: one byte per fragment", closeInvalidData, split...)
		e.failsWith("a 2-byte character started in one fragment and broken in the next", closeInvalidData,
			clientFrame(false, 0, opText, []byte{'a', 0xce}), clientFrame(true, 0, opCont, []byte{0x20}))
		e.failsWith("a surrogate split across fragments", closeInvalidData,
			clientFrame(false, 0, opText, []byte{0xed, 0xa0}), clientFrame(true, 0, opCont, []byte{0x80}))
		e.failsWith("a message whose last fragment ends inside a character", closeInvalidData,
			clientFrame(false, 0, opText, []byte("ab")), clientFrame(true, 0, opCont, []byte{'c', 0xe2, 0x82}))
	})
}

func checkWSClose(t *caseT) {
	t.eachWSEndpoint(func(e *wsEnv) {
		normal := []int{closeNormal}
		e.clientCloses("a text message, then a close 1000", normal, textFrame("last words"), closeFrame(closeNormal, ""))
		e.clientCloses("two close frames", normal, closeFrame(closeNormal, ""), closeFrame(closeNormal, "again"))
		e.clientCloses("a close, then a ping (not answered)", normal, closeFrame(closeNormal, ""), clientFrame(true, 0, opPing, []byte(probePrefix+"closed")))
		e.clientCloses("a close, then a text message", normal, closeFrame(closeNormal, ""), textFrame("after close"))
		e.clientCloses("a fragment, a close, then the last fragment", normal,
			clientFrame(false, 0, opText, []byte("frag")), closeFrame(closeNormal, ""), clientFrame(true, 0, opCont, []byte("ment")))
		e.clientCloses("a close without payload", []int{closeNone, closeNormal}, clientFrame(true, 0, opClose, nil))
		e.clientCloses("a close 1000 with the reason \"Hello World!\"", normal, closeFrame(closeNormal, "Hello World!"))
		e.clientCloses("a close 1000 with a 123-byte reason", normal, closeFrame(closeNormal, strings.Repeat("*", 123)))
		for _, code := range []int{1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
			e.clientCloses(fmt.Sprintf("a close %d (echoed)", code), []int{code}, closeFrame(code, ""))
		}
		e.failsWith("a close with a 1-byte payload", closeProtocol, clientFrame(true, 0, opClose, []byte{0x03}))
		e.failsWith("a close 1000 with a 124-byte reason (126-byte control frame)", closeProtocol, closeFrame(closeNormal, strings.Repeat("*", 124)))
		for _, code := range []int{0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
			e.failsWith(fmt.Sprintf("a close with code %d", code), closeProtocol, closeFrame(code, ""))
		}
		e.failsWith("a close 1000 whose reason is not UTF-8", closeInvalidData, closeFrame(closeNormal, string(utf8Bad[0].b)))
	})
}
