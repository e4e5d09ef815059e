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
	CloseTooBig        uint16 = 1009
)

// pingFrame is the server's keep-alive ping, empty payload.
var pingFrame = AppendPingFrame(nil, nil)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// upgrade validates r as an RFC 6455 opening handshake and answers 101.
func (lp *loop) upgrade(c *conn, r *Request, extra []byte) error {
	h := r.Header
	if h == nil || r.HTTP10 || string(r.Method) != "GET" ||
		!headerHasToken(h.Peek("Upgrade"), "websocket") ||
		!headerHasToken(h.Peek("Connection"), "upgrade") ||
		string(bytes.TrimSpace(h.Peek("Sec-WebSocket-Version"))) != "13" {
		return ErrBadUpgrade
	}
	key := bytes.TrimSpace(h.Peek("Sec-WebSocket-Key"))
	if len(key) != 24 {
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
	c.flags &= fInServe | fDrain
	c.lastRecv = lp.now
	lp.wheel.schedule(c, lp.now+int64(lp.s.opts.PingInterval))
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
// a close is echoed, data frames are dropped. A frame declared larger
// than MaxFrameBytes closes with 1009 before its payload is read.
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
		fh, verdict := parseFrameHeader(buf, lp.s.opts.MaxFrameBytes)
		switch verdict {
		case frameNeedMore:
			return
		case CloseProtocolError:
			lp.wsFail(c, CloseProtocolError, "protocol error")
			return
		case CloseTooBig:
			lp.wsFail(c, CloseTooBig, "frame too big")
			return
		}
		hl, length, op, mask := fh.headerLen, fh.length, fh.op, fh.mask
		total := hl + length
		if len(buf) < total {
			c.need = int32(total)
			return
		}
		c.need = 0
		payload := buf[hl:total]
		switch op {
		case ws.OpPing:
			ws.Cipher(payload, mask, 0)
			lp.out = appendFrame(lp.out[:0], ws.OpPong, payload)
			c.send(lp.out)
		case ws.OpText:
			if c.flags&fBeacon != 0 && fh.fin && len(payload) == 4 {
				ws.Cipher(payload, mask, 0)
				if string(payload) == "ping" {
					c.send(lp.s.opts.WSBeacon)
				}
			}
		case ws.OpClose:
			ws.Cipher(payload, mask, 0)
			if len(payload) >= 2 {
				code := binary.BigEndian.Uint16(payload)
				lp.out = AppendCloseFrame(lp.out[:0], code, "")
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
		_, _ = c.gc.Discard(total)
	}
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
