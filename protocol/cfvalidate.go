package protocol

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
)

// Parameter validation and signatures for the Cometify API (SPEC CF-P-01,
// CF-P-03, CF-L-06, and the LIST grammar of section 5). Nothing here
// allocates: lists parse into the caller's slice, signatures hash a scratch
// buffer.

const (
	maxIdentifier = 60
	maxCFText     = 64 << 10
)

// validIdentifier: ^[a-zA-Z][a-zA-Z0-9_]{0,59}$ (CF-P-01).
func validIdentifier(b []byte) bool {
	if len(b) == 0 || len(b) > maxIdentifier {
		return false
	}
	for i, c := range b {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if i > 0 {
			ok = ok || '0' <= c && c <= '9' || c == '_'
		}
		if !ok {
			return false
		}
	}
	return true
}

// appendLower appends b lowercased (identifiers are ASCII, CF-P-01).
func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// listItem is one identifier of a listener's LIST.
type listItem struct {
	name  []byte // as sent (secureKey joins them so)
	id    uint64 // the internal id of the id form
	hasID bool
}

// parseList parses a LIST, `a,b` or `a:5,b:0`, into items (reusing its
// storage). Mixed forms, an empty or malformed name, a bad id, one
// identifier twice (in any case) or more than max items is errBadList.
func parseList(items []listItem, list []byte, max int) ([]listItem, *apiError) {
	items = items[:0]
	if len(list) == 0 {
		return items, errMissingIdentifiers
	}
	for len(list) > 0 || len(items) == 0 {
		var part []byte
		if i := indexByte(list, ','); i >= 0 {
			part, list = list[:i], list[i+1:]
			if len(list) == 0 {
				return items, errBadList // trailing comma: an empty name
			}
		} else {
			part, list = list, nil
		}
		it := listItem{name: part}
		if i := indexByte(part, ':'); i >= 0 {
			id, ok := parseUint63(part[i+1:])
			if !ok {
				return items, errBadList
			}
			it = listItem{name: part[:i], id: id, hasID: true}
		}
		if !validIdentifier(it.name) || len(items) > 0 && items[0].hasID != it.hasID {
			return items, errBadList
		}
		for _, prev := range items {
			if equalFoldASCII(prev.name, it.name) {
				return items, errBadList
			}
		}
		if len(items) == max {
			return items, errTooManyIdentifiers
		}
		items = append(items, it)
	}
	return items, nil
}

// applyLastEventID overrides items' ids with those of an id-form LIST
// (CF-L-03's Last-Event-ID): an item named there resumes from its id; an
// item not named keeps what the query said; names not in items are
// ignored. A header that does not parse is ignored whole, as a browser's
// stale or foreign id would be.
func applyLastEventID(items []listItem, scratch []listItem, leid []byte, max int) []listItem {
	given, e := parseList(scratch, leid, max)
	if e != nil || !given[0].hasID {
		return given
	}
	for i := range items {
		for _, g := range given {
			if equalFoldASCII(g.name, items[i].name) {
				items[i].id, items[i].hasID = g.id, true
				break
			}
		}
	}
	return given
}

// parseUint63 parses a decimal integer 0..2^63-1 (a LIST's internal ids,
// CF-P-10's ts): 1..19 digits, no sign, no space.
func parseUint63(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n <= 1<<63-1
}

// parsePushID parses CF-P-02's push_id: a decimal integer 1..2^63-1.
func parsePushID(b []byte) (uint64, bool) {
	n, ok := parseUint63(b)
	return n, ok && n > 0
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func equalFoldASCII(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// appendMD5Hex appends md5hex(b).
func appendMD5Hex(dst, b []byte) []byte {
	sum := md5.Sum(b)
	return hex.AppendEncode(dst, sum[:])
}

// matchMD5Hex reports, in constant time for well-formed input, whether
// given is the hex of md5(msg) in either case (CF-P-03, CF-L-06).
func matchMD5Hex(given, msg []byte) bool {
	var want [md5.Size]byte
	if !decodeHex(want[:], given) {
		return false
	}
	sum := md5.Sum(msg)
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// decodeHex decodes src, hex digits in either case, into exactly dst.
// Whether src is well-formed depends only on the client's bytes, so the
// early return tells an attacker nothing about a secret.
func decodeHex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, lo := src[2*i], src[2*i+1]
		if !isHex(hi) || !isHex(lo) {
			return false
		}
		dst[i] = unhex(hi)<<4 | unhex(lo)
	}
	return true
}

// pushSignature appends what CF-P-03's secure signs:
// apiKey + md5hex(apiSecret) + identifier + text.
func pushSignature(dst []byte, apiKey, apiSecret string, identifier, text []byte) []byte {
	dst = append(dst, apiKey...)
	dst = appendMD5Hex(dst, []byte(apiSecret))
	dst = append(dst, identifier...)
	return append(dst, text...)
}

// secureKeySignature appends what CF-L-06's secureKey signs:
// apiKey + apiSecret + md5hex(names joined by ",", as sent).
func secureKeySignature(dst []byte, apiKey, apiSecret string, items []listItem) []byte {
	dst = append(dst, apiKey...)
	dst = append(dst, apiSecret...)
	start := len(dst)
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, it.name...)
	}
	sum := md5.Sum(dst[start:])
	dst = dst[:start]
	return hex.AppendEncode(dst, sum[:])
}
