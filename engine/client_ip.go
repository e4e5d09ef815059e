package engine

import (
	"bytes"
	"net/netip"
	"unsafe"
)

// Request.ClientIP (C-07). For a peer inside Options.TrustedProxies the
// client is the right-most address of the forwarding list that is not
// itself trusted: every X-Forwarded-For line read as one list, left line
// first, or, when no X-Forwarded-For line is present, every RFC 7239
// Forwarded line's for= parameters, one per element. X-Forwarded-For wins
// when both are present: a proxy must set the one it forwards and strip
// the other, or a client could choose its own address.
//
// Walking from the right, an entry that does not parse (unknown,
// _hidden, a port-less ':' or garbage) ends the walk: the last trusted
// hop is the answer, since nothing left of it can be believed. When
// every entry is trusted the left-most one is the answer.
//
// It allocates nothing: the list is read left to right in one pass, with
// the answer kept as it would come out of the walk from the right (see
// hopWalk), and addresses are parsed from the header bytes in place.

// clientIP returns the client address of a request whose TCP peer is
// trusted. h's PeekAll result is reused by the next PeekAll, so each
// header is walked before the next is looked up.
func clientIP(peer netip.Addr, h HeaderPeeker, trusted []netip.Prefix) netip.Addr {
	w := hopWalk{trusted: trusted, next: true}
	if lines := h.PeekAll("X-Forwarded-For"); len(lines) > 0 {
		for _, line := range lines {
			w.xffLine(line)
		}
	} else {
		for _, line := range h.PeekAll("Forwarded") {
			w.forwardedLine(line)
		}
	}
	if w.next {
		return peer
	}
	return w.res
}

// hopWalk finds, reading a list left to right, what a walk from its right
// end would: the last entry that is untrusted (the answer) or unparsable
// (then the answer is the trusted entry after it, or the peer when it is
// the last entry); with neither, the first entry.
type hopWalk struct {
	trusted []netip.Prefix
	res     netip.Addr
	next    bool // the answer is the next parsable entry, or the peer
}

func (w *hopWalk) entry(a netip.Addr, ok bool) {
	switch {
	case !ok:
		w.res, w.next = netip.Addr{}, true
	case !isTrusted(a, w.trusted):
		w.res, w.next = a, false
	case w.next:
		w.res, w.next = a, false
	}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// xffLine walks one X-Forwarded-For line: entries separated by commas.
func (w *hopWalk) xffLine(line []byte) {
	for {
		i := bytes.IndexByte(line, ',')
		if i < 0 {
			w.entry(parseNode(trimOWS(line)))
			return
		}
		w.entry(parseNode(trimOWS(line[:i])))
		line = line[i+1:]
	}
}

// forwardedLine walks one Forwarded line (RFC 7239 4): elements separated
// by commas, each pairs "name=value" separated by semicolons, a value a
// token or a quoted string. An element's for= value is its entry; an
// element without exactly one for=, or with a malformed pair, is an entry
// that does not parse. A quoted value holding a backslash escape is taken
// as one that does not parse (no node needs one).
func (w *hopWalk) forwardedLine(line []byte) {
	i := 0
	for {
		var node []byte
		fors, bad := 0, false
		for { // the pairs of one element
			i = skipOWS(line, i)
			j := i
			for j < len(line) && isTokenChar(line[j]) {
				j++
			}
			name := line[i:j]
			i = skipOWS(line, j)
			if i < len(line) && line[i] == '=' && len(name) > 0 {
				i = skipOWS(line, i+1)
				var v []byte
				var ok bool
				v, i, ok = forwardedValue(line, i)
				if !ok {
					bad = true
				}
				if len(name) == 3 && bytes.EqualFold(name, strFor) {
					fors++
					node = v
				}
				i = skipOWS(line, i)
			} else if len(name) > 0 {
				bad = true
			}
			if i < len(line) && line[i] == ';' {
				i++
				continue
			}
			if i < len(line) && line[i] != ',' {
				bad = true
				i = skipToComma(line, i)
			}
			break
		}
		if bad || fors != 1 {
			w.entry(netip.Addr{}, false)
		} else {
			w.entry(parseNode(node))
		}
		if i >= len(line) {
			return
		}
		i++ // the comma
	}
}

var strFor = []byte("for")

// forwardedValue reads a token or quoted-string value at line[i]; ok is
// false for a quoted string with an escape or without its end, or an
// empty value.
func forwardedValue(line []byte, i int) (v []byte, end int, ok bool) {
	if i < len(line) && line[i] == '"' {
		for j := i + 1; j < len(line); j++ {
			switch line[j] {
			case '\\':
				return nil, skipToComma(line, i), false
			case '"':
				return line[i+1 : j], j + 1, true
			}
		}
		return nil, len(line), false
	}
	j := i
	for j < len(line) && line[j] != ';' && line[j] != ',' && line[j] != ' ' && line[j] != '\t' && line[j] != '"' {
		j++
	}
	return line[i:j], j, j > i
}

// skipToComma returns the index of the next comma outside a quoted
// string (quoted-pairs skipped), or len(line).
func skipToComma(line []byte, i int) int {
	quoted := false
	for ; i < len(line); i++ {
		switch ch := line[i]; {
		case quoted && ch == '\\':
			i++
		case ch == '"':
			quoted = !quoted
		case ch == ',' && !quoted:
			return i
		}
	}
	return len(line)
}

func skipOWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// parseNode parses a forwarding entry: "ip", "ipv4:port", "[ipv6]",
// "[ipv6]:port" or a bare IPv6 address; IPv4-mapped IPv6 addresses are
// unmapped. Zones, obfuscated identifiers and "unknown" do not parse.
func parseNode(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	if b[0] == '[' {
		j := bytes.IndexByte(b, ']')
		if j < 0 {
			return netip.Addr{}, false
		}
		if rest := b[j+1:]; len(rest) > 0 && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(b2s(b[1:j]))
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	switch bytes.Count(b, strColon) {
	case 0:
		a, err := netip.ParseAddr(b2s(b))
		return a, err == nil
	case 1:
		i := bytes.IndexByte(b, ':')
		if !validPort(b[i+1:]) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(b2s(b[:i]))
		return a, err == nil && a.Is4()
	}
	a, err := netip.ParseAddr(b2s(b))
	return a.Unmap(), err == nil
}

var strColon = []byte(":")

// validPort reports a decimal port, 0 to 65535.
func validPort(b []byte) bool {
	if len(b) == 0 || len(b) > 5 {
		return false
	}
	n := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return false
		}
		n = n*10 + int(ch-'0')
	}
	return n <= 65535
}

// b2s views b as a string without copying; the string must not outlive
// b (netip.ParseAddr keeps none of it: zones are refused first).
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
