package engine

import (
	"net/netip"
	"strings"
	"testing"
)

// lines is a HeaderPeeker over fixed header lines.
type lines map[string][]string

func (l lines) Peek(name string) []byte {
	if v := l[name]; len(v) > 0 {
		return []byte(v[0])
	}
	return nil
}

func (l lines) PeekAll(name string) [][]byte {
	var out [][]byte
	for _, v := range l[name] {
		out = append(out, []byte(v))
	}
	return out
}

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("127.0.0.1/32"),
}

var clientIPCases = []struct {
	name string
	h    lines
	want string
}{
	{"none", lines{}, "10.0.0.1"},
	{"one", lines{"X-Forwarded-For": {"1.2.3.4"}}, "1.2.3.4"},
	{"right-most untrusted", lines{"X-Forwarded-For": {"5.5.5.5, 1.2.3.4, 10.1.1.1"}}, "1.2.3.4"},
	{"all lines one list", lines{"X-Forwarded-For": {"5.5.5.5, 1.2.3.4", "10.9.9.9"}}, "1.2.3.4"},
	{"later line wins", lines{"X-Forwarded-For": {"1.2.3.4", "6.6.6.6"}}, "6.6.6.6"},
	{"ip:port", lines{"X-Forwarded-For": {"1.2.3.4:5678"}}, "1.2.3.4"},
	{"[v6]:port", lines{"X-Forwarded-For": {"[2a00:1450::1]:443"}}, "2a00:1450::1"},
	{"[v6]", lines{"X-Forwarded-For": {"[2a00:1450::1]"}}, "2a00:1450::1"},
	{"bare v6", lines{"X-Forwarded-For": {"2a00:1450::1"}}, "2a00:1450::1"},
	{"mapped v4", lines{"X-Forwarded-For": {"::ffff:1.2.3.4"}}, "1.2.3.4"},
	{"whitespace", lines{"X-Forwarded-For": {" \t1.2.3.4 \t,\t10.0.0.2 "}}, "1.2.3.4"},
	{"all trusted", lines{"X-Forwarded-For": {"10.0.0.3, 192.168.1.1"}}, "10.0.0.3"},
	{"unknown stops", lines{"X-Forwarded-For": {"1.2.3.4, unknown, 10.0.0.7"}}, "10.0.0.7"},
	{"garbage last", lines{"X-Forwarded-For": {"1.2.3.4, nonsense"}}, "10.0.0.1"},
	{"empty entry stops", lines{"X-Forwarded-For": {"1.2.3.4,,10.0.0.7"}}, "10.0.0.7"},
	{"empty line", lines{"X-Forwarded-For": {""}}, "10.0.0.1"},
	{"zone refused", lines{"X-Forwarded-For": {"fe80::1%eth0"}}, "10.0.0.1"},
	{"port too big", lines{"X-Forwarded-For": {"1.2.3.4:65536"}}, "10.0.0.1"},
	{"v4 in brackets", lines{"X-Forwarded-For": {"[1.2.3.4]:80"}}, "10.0.0.1"},
	{"xff wins", lines{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=6.6.6.6"}}, "1.2.3.4"},
	{"forwarded", lines{"Forwarded": {"for=1.2.3.4;proto=https;by=10.0.0.1"}}, "1.2.3.4"},
	{"forwarded elements", lines{"Forwarded": {"for=5.5.5.5, for=1.2.3.4", "for=10.0.0.9;proto=http"}}, "1.2.3.4"},
	{"forwarded quoted v6", lines{"Forwarded": {`for="[2a00:1450::1]:4711"`}}, "2a00:1450::1"},
	{"forwarded quoted v4 port", lines{"Forwarded": {`For="1.2.3.4:80"`}}, "1.2.3.4"},
	{"forwarded hidden", lines{"Forwarded": {"for=1.2.3.4, for=_hidden, for=10.0.0.4"}}, "10.0.0.4"},
	{"forwarded unknown last", lines{"Forwarded": {"for=1.2.3.4, for=unknown"}}, "10.0.0.1"},
	{"forwarded no for", lines{"Forwarded": {"for=1.2.3.4, by=10.0.0.5"}}, "10.0.0.1"},
	{"forwarded two for", lines{"Forwarded": {"for=1.2.3.4;for=5.6.7.8"}}, "10.0.0.1"},
	{"forwarded comma in quotes", lines{"Forwarded": {`for=1.2.3.4;ext="a,b", for=10.0.0.6`}}, "1.2.3.4"},
	{"forwarded escape", lines{"Forwarded": {`for=1.2.3.4, for="\"x", for=10.0.0.6`}}, "10.0.0.6"},
	{"forwarded spaces", lines{"Forwarded": {"for = 1.2.3.4 ; proto=http"}}, "1.2.3.4"},
}

func TestClientIP(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range clientIPCases {
		if got := clientIP(peer, tc.h, testTrusted); got.String() != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, got, tc.want)
		}
		if got := refClientIP(peer, tc.h, testTrusted); got.String() != tc.want {
			t.Errorf("%s: reference says %v, want %s", tc.name, got, tc.want)
		}
	}
}

// TestClientIPAllocs: reading X-Forwarded-For and Forwarded from a parsed
// request allocates nothing.
func TestClientIPAllocs(t *testing.T) {
	p := testParser()
	peer := netip.MustParseAddr("10.0.0.1")
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 5.5.5.5, [2a00:1450::1]:80\r\nX-Forwarded-For: 10.2.3.4:99\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nForwarded: for=\"[2a00:1450::1]:80\";proto=https, for=10.2.3.4\r\n\r\n",
	} {
		if res := p.parse([]byte(in), peer, nil); res.kind != parseOK {
			t.Fatalf("parse %q: %+v", in, res)
		}
		want := netip.MustParseAddr("2a00:1450::1")
		allocs := testing.AllocsPerRun(100, func() {
			if got := clientIP(peer, p.req.Header, testTrusted); got != want {
				t.Fatalf("got %v", got)
			}
		})
		if allocs != 0 {
			t.Fatalf("%q: %v allocs", in, allocs)
		}
	}
}

// refClientIP is C-07 written the simple way, for comparison: split the
// list, walk it from the right.
func refClientIP(peer netip.Addr, h lines, trusted []netip.Prefix) netip.Addr {
	type entry struct {
		a  netip.Addr
		ok bool
	}
	var list []entry
	if xff := h["X-Forwarded-For"]; len(xff) > 0 {
		for _, l := range xff {
			for _, e := range strings.Split(l, ",") {
				a, ok := refNode(strings.Trim(e, " \t"))
				list = append(list, entry{a, ok})
			}
		}
	} else {
		for _, l := range h["Forwarded"] {
			for _, el := range refSplit(l, ',') {
				node, ok := refFor(el)
				a, good := refNode(node)
				list = append(list, entry{a, ok && good})
			}
		}
	}
	cand := peer
	for i := len(list) - 1; i >= 0; i-- {
		if !list[i].ok {
			return cand
		}
		if !isTrusted(list[i].a, trusted) {
			return list[i].a
		}
		cand = list[i].a
	}
	return cand
}

// refNode parses an entry with netip's own parsers.
func refNode(s string) (netip.Addr, bool) {
	if s == "" || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		return a.Unmap(), err == nil && a.Is6()
	}
	ap, err := netip.ParseAddrPort(s)
	return ap.Addr().Unmap(), err == nil
}

// refSplit splits s at sep outside quoted strings (backslash escapes
// skipped inside them).
func refSplit(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// refFor returns the for= value of a Forwarded element, false when it has
// not exactly one or a pair is malformed.
func refFor(el string) (string, bool) {
	var node string
	fors := 0
	for _, pair := range refSplit(el, ';') {
		pair = strings.Trim(pair, " \t")
		if pair == "" {
			continue
		}
		eq := strings.IndexByte(pair, '=')
		if eq < 0 {
			return "", false
		}
		name, value := strings.TrimRight(pair[:eq], " \t"), strings.TrimLeft(pair[eq+1:], " \t")
		if name == "" {
			return "", false
		}
		for i := 0; i < len(name); i++ {
			if !isTokenChar(name[i]) {
				return "", false
			}
		}
		if strings.HasPrefix(value, `"`) {
			inner, ok := strings.CutSuffix(value[1:], `"`)
			if !ok || strings.ContainsAny(inner, "\"\\") {
				return "", false
			}
			value = inner
		} else if value == "" || strings.ContainsAny(value, ";, \t\"") {
			return "", false
		}
		if strings.EqualFold(name, "for") {
			fors++
			node = value
		}
	}
	return node, fors == 1
}

// FuzzClientIP: whatever the X-Forwarded-For and Forwarded lines, the
// walk never panics and agrees with the reference; so it never answers
// an address that is not the peer or a parsed entry, and answers a
// trusted one only where the walk ends.
func FuzzClientIP(f *testing.F) {
	for _, tc := range clientIPCases {
		var x, fw [2]string
		mask := uint8(0)
		for i, v := range tc.h["X-Forwarded-For"] {
			if i < 2 {
				x[i], mask = v, mask|1<<i
			}
		}
		for i, v := range tc.h["Forwarded"] {
			if i < 2 {
				fw[i], mask = v, mask|4<<i
			}
		}
		f.Add(mask, x[0], x[1], fw[0], fw[1])
	}
	peer := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, mask uint8, x1, x2, f1, f2 string) {
		h := lines{}
		for i, v := range []string{x1, x2} {
			if mask&(1<<i) != 0 {
				h["X-Forwarded-For"] = append(h["X-Forwarded-For"], v)
			}
		}
		for i, v := range []string{f1, f2} {
			if mask&(4<<i) != 0 {
				h["Forwarded"] = append(h["Forwarded"], v)
			}
		}
		got := clientIP(peer, h, testTrusted)
		if want := refClientIP(peer, h, testTrusted); got != want {
			t.Fatalf("%q: got %v, reference %v", h, got, want)
		}
		if !got.IsValid() || got.Is4In6() || got.Zone() != "" {
			t.Fatalf("%q: answer %v", h, got)
		}
	})
}
