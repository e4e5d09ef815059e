package protocol

import (
	"bytes"
	"crypto/rand"
)

// Parameter validation for the EZComet API (SPEC EZ-W-02, EZ-W-04,
// EZ-R-05, C-06). Each function only inspects bytes; none allocates.

const (
	maxQName = 64
	maxMsg   = 4096
	maxTick  = 64
)

// splitQName splits "<username>-<channel>" at the first '-'. Usernames
// cannot hold '-', so the first '-' is the separator. ok is false
// when the qname breaks EZ-W-02's form (a 400).
func splitQName(q []byte) (user, channel []byte, ok bool) {
	if len(q) == 0 || len(q) > maxQName {
		return nil, nil, false
	}
	i := bytes.IndexByte(q, '-')
	if i <= 0 || i == len(q)-1 {
		return nil, nil, false
	}
	user, channel = q[:i], q[i+1:]
	for _, c := range channel {
		if !isChannelByte(c) {
			return nil, nil, false
		}
	}
	return user, channel, true
}

func isChannelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '~' || c == '-'
}

// formQName checks a parsed form and its qname, the 400s every EZComet
// endpoint shares: a decoding error, then a missing or malformed qname.
func formQName(f *form) (qname, user []byte, e *apiError) {
	if f.err != nil {
		return nil, nil, f.err
	}
	qname, ok := f.get("qname")
	if !ok || len(qname) == 0 {
		return nil, nil, errMissingQName
	}
	user, _, ok = splitQName(qname)
	if !ok {
		return nil, nil, errBadQName
	}
	return qname, user, nil
}

// validTick: 1..64 bytes of printable ASCII 0x21–0x7E (EZ-W-04).
func validTick(t []byte) bool {
	if len(t) == 0 || len(t) > maxTick {
		return false
	}
	for _, c := range t {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// isNullTick: a read's tick that means "no tick" (EZ-R-02).
func isNullTick(t []byte) bool {
	return len(t) == 0 || string(t) == "null"
}

// parseTimeout parses EZ-R-05's timeout: a decimal integer 0..max.
func parseTimeout(v []byte, max int) (int, bool) {
	if len(v) == 0 || len(v) > 4 {
		return 0, false
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= max
}

// validCallback: ^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$ (C-06).
func validCallback(cb []byte) bool {
	if len(cb) == 0 || len(cb) > 64 {
		return false
	}
	for i, c := range cb {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '$'
		if i > 0 {
			ok = ok || '0' <= c && c <= '9' || c == '.'
		}
		if !ok {
			return false
		}
	}
	return true
}

// uuidLen is the length of a canonical UUID.
const uuidLen = 36

// putUUID writes a random (version 4) UUID in lowercase canonical form
// into out (uuidLen bytes): the tick of a write that gave none (EZ-W-04).
func putUUID(out []byte) {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails on Linux.
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[b>>4], hexDigits[b&0xf]
		j += 2
	}
}
