package bench

import (
	"encoding/binary"
	"errors"
)

// wsSink takes what a wsStream parses: complete data messages (op 1 or 2,
// fragments joined) and control frames (ping 9, pong 10, close 8). The
// payload is only valid during the call. A non-nil error stops the feed.
type wsSink interface {
	wsFrame(op byte, payload []byte) error
}

// wsStream is the receive side of one WebSocket connection, parsed by hand
// from raw reads: a frame split across reads is carried in left, a
// fragmented data message in frag; both are nil most of the time, so an
// idle or caught-up connection holds no buffer.
type wsStream struct {
	left   []byte // the start of a frame whose end has not been read
	frag   []byte // a fragmented data message being joined
	fragOp byte   // its opcode (0: none in progress)
}

const wsMaxPayload = 1 << 24

var (
	errWSTooLong = errors.New("websocket: frame too long")
	errWSProto   = errors.New("websocket: protocol error")
)

// wsHeader returns the length of the frame header at the start of b and the
// frame's whole length; ok is false when b does not yet hold the header.
func wsHeader(b []byte) (hdr int, total int64, ok bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	hdr = 2
	n := int64(b[1] & 0x7f)
	switch n {
	case 126:
		hdr += 2
	case 127:
		hdr += 8
	}
	if b[1]&0x80 != 0 {
		hdr += 4
	}
	if len(b) < hdr {
		return hdr, 0, false
	}
	switch n {
	case 126:
		n = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		n = int64(binary.BigEndian.Uint64(b[2:10]) & (1<<62 - 1))
	}
	return hdr, int64(hdr) + n, true
}

// feed parses the bytes of one read (b may be modified: masked payloads
// are unmasked in place) and passes every complete message to sink.
func (s *wsStream) feed(b []byte, sink wsSink) error {
	for len(s.left) > 0 && len(b) > 0 {
		// Complete the carried frame, taking from b only what it needs.
		hdr, total, ok := wsHeader(s.left)
		var want int64
		switch {
		case len(s.left) < 2:
			want = int64(2 - len(s.left))
		case !ok:
			want = int64(hdr - len(s.left))
		default:
			if total-int64(hdr) > wsMaxPayload {
				return errWSTooLong
			}
			want = total - int64(len(s.left))
		}
		k := int(min(want, int64(len(b))))
		s.left = append(s.left, b[:k]...)
		b = b[k:]
		if _, total, ok := wsHeader(s.left); ok && int64(len(s.left)) == total {
			err := s.frame(s.left, sink)
			if cap(s.left) > 512 {
				s.left = nil
			} else {
				s.left = s.left[:0]
			}
			if err != nil {
				return err
			}
		}
	}
	for len(b) > 0 {
		hdr, total, ok := wsHeader(b)
		if ok && total-int64(hdr) > wsMaxPayload {
			return errWSTooLong
		}
		if !ok || int64(len(b)) < total {
			s.left = append(s.left[:0], b...)
			return nil
		}
		if err := s.frame(b[:total], sink); err != nil {
			return err
		}
		b = b[total:]
	}
	return nil
}

// frame handles one complete frame.
func (s *wsStream) frame(f []byte, sink wsSink) error {
	hdr, _, _ := wsHeader(f)
	fin, op, p := f[0]&0x80 != 0, f[0]&0x0f, f[hdr:]
	if f[1]&0x80 != 0 {
		mask := f[hdr-4 : hdr]
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	switch {
	case op >= 0x8: // control: never fragmented, ≤ 125 bytes
		if !fin || len(p) > 125 {
			return errWSProto
		}
		return sink.wsFrame(op, p)
	case op == 0x0: // continuation
		if s.fragOp == 0 {
			return errWSProto
		}
		if len(s.frag)+len(p) > wsMaxPayload {
			return errWSTooLong
		}
		s.frag = append(s.frag, p...)
		if !fin {
			return nil
		}
		op, msg := s.fragOp, s.frag
		s.frag, s.fragOp = nil, 0
		return sink.wsFrame(op, msg)
	default: // text, binary
		if s.fragOp != 0 {
			return errWSProto
		}
		if fin {
			return sink.wsFrame(op, p)
		}
		s.frag, s.fragOp = append([]byte(nil), p...), op
		return nil
	}
}
