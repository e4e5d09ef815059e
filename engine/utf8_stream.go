package engine

import "encoding/binary"

// UTF-8 validation of a stream whose bytes arrive in pieces (WebSocket
// text messages, C-13), with one byte of state between pieces. The states
// follow the Unicode Standard's table 3-7 of well-formed byte sequences:
// after a lead byte, the range the next byte must fall in, and how many
// continuation bytes follow.
const (
	utf8Accept  uint8 = iota // at a character boundary
	utf8Need1                // one continuation byte (80..BF) to go
	utf8Need2                // two to go
	utf8Need3                // three to go
	utf8AfterE0              // next A0..BF, then one more
	utf8AfterED              // next 80..9F (no surrogates), then one more
	utf8AfterF0              // next 90..BF, then two more
	utf8AfterF4              // next 80..8F (at most U+10FFFF), then two more
	utf8Reject               // not UTF-8, whatever follows
)

// utf8Step validates p following state s and returns the new state.
func utf8Step(s uint8, p []byte) uint8 {
	for i := 0; i < len(p); i++ {
		if s == utf8Accept {
			// ASCII runs, eight bytes at a time.
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == len(p) {
				break
			}
		}
		s = utf8Next(s, p[i])
		if s == utf8Reject {
			return s
		}
	}
	return s
}

func utf8Next(s, b uint8) uint8 {
	switch s {
	case utf8Accept:
		switch {
		case b < 0x80:
			return utf8Accept
		case b >= 0xc2 && b <= 0xdf:
			return utf8Need1
		case b == 0xe0:
			return utf8AfterE0
		case b == 0xed:
			return utf8AfterED
		case b >= 0xe1 && b <= 0xef:
			return utf8Need2
		case b == 0xf0:
			return utf8AfterF0
		case b >= 0xf1 && b <= 0xf3:
			return utf8Need3
		case b == 0xf4:
			return utf8AfterF4
		}
	case utf8Need1, utf8Need2, utf8Need3:
		if b >= 0x80 && b <= 0xbf {
			return s - 1
		}
	case utf8AfterE0:
		if b >= 0xa0 && b <= 0xbf {
			return utf8Need1
		}
	case utf8AfterED:
		if b >= 0x80 && b <= 0x9f {
			return utf8Need1
		}
	case utf8AfterF0:
		if b >= 0x90 && b <= 0xbf {
			return utf8Need2
		}
	case utf8AfterF4:
		if b >= 0x80 && b <= 0x8f {
			return utf8Need2
		}
	}
	return utf8Reject
}
