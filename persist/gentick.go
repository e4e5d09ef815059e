package persist

import (
	"crypto/rand"
	"encoding/binary"
	"math"
)

// Generated ticks. A write that gives no tick (EZWrite.NewTick) gets a
// UUID (EZ-W-04: lowercase canonical, 36 chars) that the committer makes
// from the message's own seq and time, so that nothing but the message
// itself needs storing: a lookup decodes the tick and reads the message
// at that seq, which holds the tick. A client-given tick still gets a
// tick memory key (t\x00<qname>\x00<tick>), and so do the generated
// ticks of data written before (random version 4 UUIDs): those are found
// through the key as before. Saving that key cuts one of the three or four
// memtable inserts of a write, the only one at a random place.
//
// The 128 bits are an RFC 9562 version 8 ("vendor-specific") UUID:
//
//	hi: Unix ms (48) | version 8 (4) | seq bits 36..47 (12)
//	lo: variant 0b10 (2) | seq bits 0..35 (36) | check (26)
//
// Like a version 7 UUID they start with the time, so they are unique
// across channels and across a channel that is removed and made again.
// check is 26 bits of a hash of the qname and the rest of the tick:
// it keeps a tick from another channel, and a client's own version 8
// tick, from passing for one of this channel's (a client that forges one
// on purpose only misleads its own reads). Everything the tick does not
// say (is it still queued? was it this message's?) is read from the
// message at seq, as the key's value was.

// genTickLen is the length of a generated tick.
const genTickLen = 36

// genSeqMax bounds the seq a generated tick encodes; beyond it (never,
// in practice) the committer falls back to a random tick with a tick
// memory key. Any int64 time fits the 48 bits of ms.
const (
	genSeqMax = 1<<48 - 1
	genCheck  = 1<<26 - 1
	genMsMax  = math.MaxInt64 / 1_000_000
)

// genCheckOf is the check field of the tick (hi, lo with check 0) of
// qname: FNV-1a over the qname, then hi and lo mixed in as splitmix64
// finalizes (a check against accidents, not a secret).
func genCheckOf(qname string, hi, lo uint64) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(qname); i++ {
		h ^= uint64(qname[i])
		h *= 1099511628211
	}
	for _, w := range [2]uint64{hi, lo} {
		h ^= w
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h & genCheck
}

// putGenTick writes the generated tick of message seq of qname, made at
// unixNano, into out (genTickLen bytes). It returns false, writing
// nothing, when out is another length or seq or the time does not fit.
func putGenTick(out []byte, qname string, seq uint64, unixNano int64) bool {
	if len(out) != genTickLen || seq == 0 || seq > genSeqMax || unixNano < 0 {
		return false
	}
	ms := uint64(unixNano / 1e6)
	hi := ms<<16 | 8<<12 | seq>>36
	lo := 2<<62 | (seq&(1<<36-1))<<26
	lo |= genCheckOf(qname, hi, lo)
	putUUIDText(out, hi, lo)
	return true
}

// putRandomTick writes a random version 4 UUID into out (genTickLen
// bytes): a new tick that putGenTick cannot make.
func putRandomTick(out []byte) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	hi := binary.BigEndian.Uint64(b[:8])&^(0xf<<12) | 4<<12
	lo := binary.BigEndian.Uint64(b[8:])&^(3<<62) | 2<<62
	putUUIDText(out, hi, lo)
}

const lowerHex = "0123456789abcdef"

// putUUIDText writes the 128 bits hi, lo as a lowercase canonical UUID.
func putUUIDText(out []byte, hi, lo uint64) {
	j := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			out[j] = '-'
			j++
		}
		w, shift := hi, 60-4*i
		if i >= 16 {
			w, shift = lo, 60-4*(i-16)
		}
		out[j] = lowerHex[w>>uint(shift)&0xf]
		j++
	}
}

// parseGenTick returns the seq and time (Unix ns, rounded down to the
// millisecond) that tick encodes when it is a tick putGenTick made for
// qname; ok is false for every other tick.
func parseGenTick(qname string, tick []byte) (seq uint64, unixNano int64, ok bool) {
	if len(tick) != genTickLen {
		return 0, 0, false
	}
	var hi, lo uint64
	n := 0
	for j, c := range tick {
		if j == 8 || j == 13 || j == 18 || j == 23 {
			if c != '-' {
				return 0, 0, false
			}
			continue
		}
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, 0, false
		}
		if n < 16 {
			hi = hi<<4 | uint64(d)
		} else {
			lo = lo<<4 | uint64(d)
		}
		n++
	}
	if hi>>12&0xf != 8 || lo>>62 != 2 || hi>>16 > genMsMax {
		return 0, 0, false
	}
	seq = (hi&0xfff)<<36 | lo>>26&(1<<36-1)
	if seq == 0 || lo&genCheck != genCheckOf(qname, hi, lo&^genCheck) {
		return 0, 0, false
	}
	return seq, int64(hi>>16) * 1e6, true
}
