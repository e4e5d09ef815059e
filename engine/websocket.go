package engine

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"

	"github.com/gobwas/ws"
)

// WebSocket close codes the engine uses (RFC 6455 7.4.1).
const (
	CloseNormal        uint16 = 1000
	CloseGoingAway     uint16 = 1001
	CloseProtocolError uint16 = 1002
	CloseInvalidData   uint16 = 1007
	CloseTooBig        uint16 = 1009
)

// pingFrame is the server's keep-alive ping, empty payload.
var pingFrame = AppendPingFrame(nil, nil)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// upgrade validates r as an RFC 6455 opening handshake (4.2.1) and
// answers 101. A version other than 13 is ErrUpgradeVersion, for the
// handler's 426; a key that is not base64 of 16 bytes, ErrBadUpgrade.
func (lp *loop) upgrade(c *conn, r *Request, extra []byte) error {
	h := r.Header
	if h == nil || r.HTTP10 || string(r.Method) != "GET" ||
		!headerHasToken(h.Peek("Upgrade"), "websocket") ||
		!headerHasToken(h.Peek("Connection"), "upgrade") {
		return ErrBadUpgrade
	}
	if string(trimOWS(h.Peek("Sec-WebSocket-Version"))) != "13" {
		return ErrUpgradeVersion
	}
	key := trimOWS(h.Peek("Sec-WebSocket-Key"))
	var raw [18]byte
	if len(key) != 24 {
		return ErrBadUpgrade
	}
	if n, err := base64.StdEncoding.Strict().Decode(raw[:], key); err != nil || n != 16 {
		return ErrBadUpgrade
	}
	var nonce [24 + len(wsGUID)]byte
	copy(nonce[copy(nonce[:], key):], wsGUID)
	digest := sha1.Sum(nonce[:])
	var accept [28]byte
	base64.StdEncoding.Encode(accept[:], digest[:])

	lp.wheel.remove(c)
	out := append(lp.out[:0], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	out = append(out, accept[:]...)
	out = append(out, "\r\n"...)
	out = append(out, extra...)
	out = append(out, "\r\n"...)
	lp.out = out
	c.write(out)
	if c.state == stClosed {
		return nil
	}
	c.setState(stWS)
	c.flags &^= fRequest
	c.ws = wsMsgState{}
	c.lastRecv = lp.now
	lp.wheel.schedule(c, lp.now+int64(lp.s.opts.PingInterval))
	lp.readsChanged(c)
	return nil
}

// headerHasToken reports whether a comma-separated header value holds
// token, in any case.
func headerHasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		if bytes.EqualFold(bytes.TrimSpace(part), []byte(token)) {
			return true
		}
	}
	return false
}

// processWS handles the client frames buffered on c: pings are answered,
// a close is echoed, data frames are checked (fragmentation, UTF-8 of
// text) and dropped. A frame declared larger than MaxFrameBytes closes
// with 1009 before its payload is read.
func (lp *loop) processWS(c *conn) {
	for c.state == stWS {
		n := c.gc.InboundBuffered()
		if n < 2 || int(c.need) > n {
			return
		}
		buf, err := c.gc.Peek(-1)
		if err != nil {
			return
		}
		f, verdict := readClientFrame(buf, &c.ws, lp.s.opts.MaxFrameBytes)
		switch verdict {
		case frameNeedMore:
			c.need = int32(f.size)
			return
		case CloseProtocolError:
			lp.wsFail(c, CloseProtocolError, "protocol error")
			return
		case CloseInvalidData:
			lp.wsFail(c, CloseInvalidData, "invalid UTF-8")
			return
		case CloseTooBig:
			lp.wsFail(c, CloseTooBig, "frame too big")
			return
		}
		c.need = 0
		switch f.op {
		case ws.OpPing:
			lp.out = appendFrame(lp.out[:0], ws.OpPong, f.payload)
			c.send(lp.out)
		case ws.OpText:
			if c.flags&fBeacon != 0 && f.fin && string(f.payload) == "ping" {
				c.send(lp.s.opts.WSBeacon)
			}
		case ws.OpClose:
			// RFC 6455 5.5.1: echo the code (none when none was given).
			if f.code != 0 {
				lp.out = AppendCloseFrame(lp.out[:0], f.code, "")
			} else {
				lp.out = appendFrame(lp.out[:0], ws.OpClose, nil)
			}
			c.write(lp.out)
			lp.closeAfterFlush(c)
			return
		}
		if c.state != stWS {
			return
		}
		_, _ = c.gc.Discard(f.size)
	}
}

// wsMsgState is what RFC 6455 makes a receiver remember between a
// client's frames: whether a fragmented data message is open, whether it
// is text, and where the UTF-8 validation of that text stands. Two
// bytes per connection; payloads are never kept.
type wsMsgState struct {
	flags uint8 // wsOpen, wsText
	utf8  uint8 // utf8Step state of the open text message
}

const (
	wsOpen uint8 = 1 << iota // a data message's first frame came, its final one not yet
	wsText                   // that message is text
)

// clientFrame is one complete client frame as readClientFrame found it.
type clientFrame struct {
	op      ws.OpCode
	fin     bool
	payload []byte // unmasked in place, aliasing the buffer
	// size is the frame's length, header included; for frameNeedMore,
	// the buffered length needed to read it (0 when not yet known).
	size int
	code uint16 // close frame: the code given, 0 for none
}

// readClientFrame reads the frame at the start of buf, checks it against
// RFC 6455 as a server must (5.1-5.5, 5.6 and 8.1 for text, 7.4 for close
// codes) and updates st. The verdict is 0 for a valid frame,
// frameNeedMore, or the close code to fail the connection with: 1002
// (framing, fragmentation, close frame), 1007 (text or close reason not
// UTF-8, detected as early as the bytes allow), 1009 (over maxPayload).
// A frame is read, and st changes, only once it is complete, so the
// verdicts do not depend on how the bytes were split.
func readClientFrame(buf []byte, st *wsMsgState, maxPayload int) (clientFrame, uint16) {
	fh, verdict := parseFrameHeader(buf, maxPayload)
	if verdict != 0 {
		return clientFrame{}, verdict
	}
	total := fh.headerLen + fh.length
	if len(buf) < total {
		return clientFrame{size: total}, frameNeedMore
	}
	f := clientFrame{op: fh.op, fin: fh.fin, payload: buf[fh.headerLen:total], size: total}
	ws.Cipher(f.payload, fh.mask, 0)
	switch f.op {
	case ws.OpContinuation:
		if st.flags&wsOpen == 0 {
			return f, CloseProtocolError
		}
		if st.flags&wsText != 0 && !st.text(f.payload, f.fin) {
			return f, CloseInvalidData
		}
		if f.fin {
			*st = wsMsgState{}
		}
	case ws.OpText, ws.OpBinary:
		if st.flags&wsOpen != 0 {
			return f, CloseProtocolError
		}
		if f.op == ws.OpText {
			st.utf8 = utf8Accept
			if !st.text(f.payload, f.fin) {
				return f, CloseInvalidData
			}
		}
		if !f.fin {
			st.flags = wsOpen
			if f.op == ws.OpText {
				st.flags |= wsText
			}
		}
	case ws.OpClose:
		switch len(f.payload) {
		case 0:
		case 1:
			return f, CloseProtocolError
		default:
			f.code = binary.BigEndian.Uint16(f.payload)
			if !validCloseCode(f.code) {
				return f, CloseProtocolError
			}
			if utf8Step(utf8Accept, f.payload[2:]) != utf8Accept {
				return f, CloseInvalidData
			}
		}
	}
	return f, 0
}

// text goes on validating the open text message with p; false when it
// cannot be UTF-8 (or, at its final frame, ends inside a character).
func (st *wsMsgState) text(p []byte, fin bool) bool {
	st.utf8 = utf8Step(st.utf8, p)
	return st.utf8 != utf8Reject && (!fin || st.utf8 == utf8Accept)
}

// validCloseCode reports a close code a client may send (RFC 6455 7.4):
// 1000-1003, 1007-1011, 3000-4999.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	}
	return code >= 3000 && code <= 4999
}

// frameHeader is a client frame's header as parseFrameHeader reads it.
type frameHeader struct {
	op        ws.OpCode
	fin       bool
	headerLen int
	length    int
	mask      [4]byte
}

// frameNeedMore is parseFrameHeader's verdict for a header not yet
// complete; 0 means valid; otherwise the verdict is the close code.
const frameNeedMore = 1

// parseFrameHeader reads a client frame header at the start of buf and
// checks it: masked (RFC 6455 5.1), no RSV bits, a known opcode, control
// frames final and at most 125 bytes, the declared length at most
// maxPayload. It never looks at the payload.
func parseFrameHeader(buf []byte, maxPayload int) (frameHeader, uint16) {
	var fh frameHeader
	if len(buf) < 2 {
		return fh, frameNeedMore
	}
	b0, b1 := buf[0], buf[1]
	fin, rsv, op := b0&0x80 != 0, b0&0x70, ws.OpCode(b0&0x0f)
	masked := b1&0x80 != 0
	hl, length := 2, uint64(b1&0x7f)
	switch length {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if masked {
		hl += 4
	}
	if rsv != 0 || !masked || !knownOpCode(op) || op.IsControl() && (!fin || length > 125) {
		return fh, CloseProtocolError
	}
	if len(buf) < hl {
		return fh, frameNeedMore
	}
	switch length {
	case 126:
		length = uint64(binary.BigEndian.Uint16(buf[2:4]))
	case 127:
		length = binary.BigEndian.Uint64(buf[2:10])
	}
	if length > uint64(maxPayload) {
		return fh, CloseTooBig
	}
	fh.op, fh.fin, fh.headerLen, fh.length = op, fin, hl, int(length)
	copy(fh.mask[:], buf[hl-4:hl])
	return fh, 0
}

func knownOpCode(op ws.OpCode) bool {
	switch op {
	case ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong:
		return true
	}
	return false
}

// wsFail closes c with a close frame after a client broke the protocol.
func (lp *loop) wsFail(c *conn, code uint16, reason string) {
	lp.stats.parseErrors.Add(1)
	lp.out = AppendCloseFrame(lp.out[:0], code, reason)
	c.write(lp.out)
	_, _ = c.gc.Discard(-1)
	c.flags |= fLinger // the peer may still be sending the refused frame
	lp.closeAfterFlush(c)
}

// appendFrame appends one unmasked, final server frame.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|byte(op))
	switch {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// AppendTextFrame appends payload as one unmasked WebSocket text frame, as
// a server sends it. Build a frame once and Send it to many connections.
func AppendTextFrame(dst, payload []byte) []byte {
	return appendFrame(dst, ws.OpText, payload)
}

// AppendCloseFrame appends a close frame with code and reason (the reason
// is cut to fit the 125-byte control frame limit).
func AppendCloseFrame(dst []byte, code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	dst = append(dst, 0x80|byte(ws.OpClose), byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// AppendPingFrame appends a ping frame; payload must be at most 125 bytes.
func AppendPingFrame(dst, payload []byte) []byte {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	return appendFrame(dst, ws.OpPing, payload)
}
