package engine

import (
	"bytes"
	"math/rand"
	"net/netip"
	"strings"
	"testing"
)

func testParser() *requestParser { return newRequestParser(8<<10, 256<<10) }

type parseWant struct {
	kind     parseKind
	status   int
	method   string
	path     string
	query    string // "<nil>" when absent
	body     string
	http10   bool
	keep     bool
	consumed int // 0: whole input
}

func checkParse(t *testing.T, name string, p *requestParser, in string, w parseWant) {
	t.Helper()
	res := p.parse([]byte(in), netip.Addr{})
	if res.kind != w.kind {
		t.Fatalf("%s: kind %d (status %d %s), want %d", name, res.kind, res.status, res.msg, w.kind)
	}
	switch res.kind {
	case parseFail:
		if res.status != w.status {
			t.Fatalf("%s: status %d, want %d", name, res.status, w.status)
		}
	case parseOK:
		r := &p.req
		q := "<nil>"
		if r.Query != nil {
			q = string(r.Query)
		}
		if string(r.Method) != w.method || string(r.Path) != w.path || q != w.query ||
			string(r.Body) != w.body || r.HTTP10 != w.http10 || res.keepAlive != w.keep {
			t.Fatalf("%s: got %q %q %q body %q http10 %v keep %v", name, r.Method, r.Path, q, r.Body, r.HTTP10, res.keepAlive)
		}
		want := w.consumed
		if want == 0 {
			want = len(in)
		}
		if res.consumed != want {
			t.Fatalf("%s: consumed %d, want %d", name, res.consumed, want)
		}
	}
}

var parseCases = []struct {
	name string
	in   string
	want parseWant
}{
	{"get", "GET /read?qname=a-b&tick=5 HTTP/1.1\r\nHost: x\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/read", query: "qname=a-b&tick=5", keep: true}},
	{"no query", "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/", query: "<nil>", keep: true}},
	{"empty query", "GET /a? HTTP/1.1\r\nHost: x\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/a", query: "", keep: true}},
	{"absolute form", "POST http://example.com/1/push/x?y=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
		parseWant{kind: parseOK, method: "POST", path: "/1/push/x", query: "y=1", body: "abc", keep: true}},
	{"absolute form no path", "GET http://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/", query: "q", keep: true}},
	{"http10", "GET /x HTTP/1.0\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/x", query: "<nil>", http10: true}},
	{"http10 keep-alive", "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/x", query: "<nil>", http10: true, keep: true}},
	{"connection close", "GET /x HTTP/1.1\r\nhost: x\r\nCONNECTION: close\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/x", query: "<nil>"}},
	{"bare LF", "GET /x HTTP/1.1\nHost: x\n\n", parseWant{kind: parseFail, status: 400}},
	{"leading CRLF", "\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/x", query: "<nil>", keep: true}},
	{"chunked", "POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
		parseWant{kind: parseOK, method: "POST", path: "/w", query: "<nil>", body: "abcde", keep: true}},
	{"pipelined first", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		parseWant{kind: parseOK, method: "GET", path: "/a", query: "<nil>", keep: true, consumed: 28}},
	{"body then next", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET",
		parseWant{kind: parseOK, method: "POST", path: "/a", query: "<nil>", body: "hi", keep: true, consumed: 50}},
	{"incomplete header", "GET /a HTTP/1.1\r\nHost: x\r\n", parseWant{kind: parseNeedMore}},
	{"incomplete body", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", parseWant{kind: parseNeedMore}},
	{"incomplete chunked", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", parseWant{kind: parseNeedMore}},
	{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", parseWant{kind: parseFail, status: 400}},
	{"garbage line", "hello world\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"no host", "GET / HTTP/1.1\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"version 2", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", parseWant{kind: parseFail, status: 505}},
	{"version 1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", parseWant{kind: parseFail, status: 505}},
	{"version junk", "GET / HTTX/1.1\r\nHost: x\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"body too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 262145\r\n\r\n", parseWant{kind: parseFail, status: 413}},
	{"chunked too large", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40001\r\n", parseWant{kind: parseFail, status: 413}},
	{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", parseWant{kind: parseFail, status: 400}},
	{"bad content-length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 9000) + "\r\n\r\n", parseWant{kind: parseFail, status: 431}},
	{"headers too large incomplete", "GET / HTTP/1.1\r\nX-A: " + strings.Repeat("a", 9000), parseWant{kind: parseFail, status: 431}},
	{"request line too long", "GET /" + strings.Repeat("a", 9000), parseWant{kind: parseFail, status: 431}},
}

func TestParseRequest(t *testing.T) {
	p := testParser()
	for _, tc := range parseCases {
		checkParse(t, tc.name, p, tc.in, tc.want)
	}
}

// TestParseRequestEveryPrefix feeds each complete request cut at every
// byte: every proper prefix must ask for more bytes, never fail or
// succeed early.
func TestParseRequestEveryPrefix(t *testing.T) {
	p := testParser()
	for _, tc := range parseCases {
		if tc.want.kind != parseOK || tc.want.consumed != 0 {
			continue
		}
		for i := 0; i < len(tc.in); i++ {
			res := p.parse([]byte(tc.in[:i]), netip.Addr{})
			if res.kind != parseNeedMore {
				t.Fatalf("%s: prefix %d of %d: kind %d status %d", tc.name, i, len(tc.in), res.kind, res.status)
			}
		}
		checkParse(t, tc.name, p, tc.in, tc.want)
	}
}

func TestParseExpectContinue(t *testing.T) {
	p := testParser()
	in := "POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nexpect: 100-Continue\r\n\r\n"
	res := p.parse([]byte(in), netip.Addr{})
	if res.kind != parseNeedMore || !res.expectContinue || res.need != len(in)+5 {
		t.Fatalf("got %+v", res)
	}
	res = p.parse([]byte(in+"hello"), netip.Addr{})
	if res.kind != parseOK || string(p.req.Body) != "hello" {
		t.Fatalf("got %+v", res)
	}
}

func TestParseHeaderLookupAnyCase(t *testing.T) {
	p := testParser()
	res := p.parse([]byte("GET / HTTP/1.1\r\nhOsT: h\r\nx-forwarded-for: 1.2.3.4\r\nSEC-WEBSOCKET-KEY: k\r\n\r\n"), netip.Addr{})
	if res.kind != parseOK {
		t.Fatalf("got %+v", res)
	}
	for name, want := range map[string]string{"X-Forwarded-For": "1.2.3.4", "x-forwarded-for": "1.2.3.4", "Sec-WebSocket-Key": "k", "Host": "h", "Missing": ""} {
		if got := string(p.req.Header.Peek(name)); got != want {
			t.Errorf("Peek(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestParsePipelinedRandomSplits parses a pipelined stream fed in random
// pieces, as a connection would see it.
func TestParsePipelinedRandomSplits(t *testing.T) {
	stream := "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n" +
		"GET /4?q HTTP/1.0\r\n\r\n"
	want := []string{"/1", "/2abc", "/3z", "/4"}
	rng := rand.New(rand.NewSource(1))
	p := testParser()
	for round := 0; round < 200; round++ {
		var buf []byte
		var got []string
		rest := stream
		for len(rest) > 0 || len(buf) > 0 {
			if len(rest) > 0 {
				n := 1 + rng.Intn(len(rest))
				if round == 0 {
					n = 1
				}
				buf = append(buf, rest[:n]...)
				rest = rest[n:]
			}
			for {
				res := p.parse(buf, netip.Addr{})
				if res.kind == parseFail {
					t.Fatalf("round %d: fail %d", round, res.status)
				}
				if res.kind == parseNeedMore {
					break
				}
				got = append(got, string(p.req.Path)+string(p.req.Body))
				buf = buf[res.consumed:]
			}
			if len(rest) == 0 && len(buf) > 0 {
				t.Fatalf("round %d: %q left over", round, buf)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("round %d: got %v", round, got)
		}
	}
}

func TestParseRequestAllocs(t *testing.T) {
	p := testParser()
	in := []byte("GET /read?qname=john-chat&tick=abc&timeout=30 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: test\r\nAccept: */*\r\nOrigin: http://x\r\n\r\n")
	p.parse(in, netip.Addr{})
	allocs := testing.AllocsPerRun(100, func() {
		if res := p.parse(in, netip.Addr{}); res.kind != parseOK {
			t.Fatal("parse failed")
		}
		_ = p.req.Header.Peek("Origin")
	})
	if allocs != 0 {
		t.Fatalf("parse: %v allocs, want 0", allocs)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	p := testParser()
	in := []byte("GET /read?qname=john-chat&tick=abc&timeout=30 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: test\r\nAccept: */*\r\nOrigin: http://x\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		p.parse(in, netip.Addr{})
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	p := newRequestParser(1024, 4096)
	f.Fuzz(func(t *testing.T, in []byte) {
		res := p.parse(in, netip.Addr{})
		switch res.kind {
		case parseOK:
			if res.consumed <= 0 || res.consumed > len(in) {
				t.Fatalf("consumed %d of %d", res.consumed, len(in))
			}
			method, path, body := string(p.req.Method), string(p.req.Path), string(p.req.Body)
			// The request alone parses the same.
			again := p.parse(bytes.Clone(in[:res.consumed]), netip.Addr{})
			if again.kind != parseOK || again.consumed != res.consumed ||
				string(p.req.Method) != method || string(p.req.Path) != path || string(p.req.Body) != body {
				t.Fatalf("prefix parses differently: %+v", again)
			}
			if len(p.req.Body) > 4096 {
				t.Fatalf("body %d over limit", len(p.req.Body))
			}
		case parseFail:
			switch res.status {
			case 400, 413, 431, 505:
			default:
				t.Fatalf("status %d", res.status)
			}
		case parseNeedMore:
			if len(in) > 8*4096+2*1024 {
				t.Fatalf("needs more after %d bytes", len(in))
			}
		}
	})
}
