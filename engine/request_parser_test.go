package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
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
	res := p.parse([]byte(in), netip.Addr{}, nil)
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
	// Found by FuzzParseRequest: the verdict was 400 when the line came in
	// pieces, 431 when it came whole.
	{"control byte in a long line", "GET /" + strings.Repeat("a", 800) + "\x02" + strings.Repeat("a", 9000), parseWant{kind: parseFail, status: 400}},

	// C-03: framing read as RFC 9112 6.1-6.3 and 7.1 does.
	{"chunked any case", "POST /w HTTP/1.1\r\nHost: x\r\ntransfer-encoding:  ChunKed \r\n\r\n2\r\nok\r\n0\r\n\r\n",
		parseWant{kind: parseOK, method: "POST", path: "/w", query: "<nil>", body: "ok", keep: true}},
	{"chunked one chunk", "POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		parseWant{kind: parseOK, method: "POST", path: "/w", query: "<nil>", body: "hello", keep: true}},
	{"chunked empty", "POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		parseWant{kind: parseOK, method: "POST", path: "/w", query: "<nil>", body: "", keep: true}},
	{"chunked then next", "POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
		parseWant{kind: parseOK, method: "POST", path: "/w", query: "<nil>", body: "a", keep: true, consumed: 68}},
	{"same content-length twice", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", parseWant{kind: parseFail, status: 400}},
	{"te identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te list", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te chunked twice in a list", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te two lines", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te http/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te and content-length", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"content-length and te", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"te folded", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n ,gzip\r\n\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"content-lengths disagree", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!", parseWant{kind: parseFail, status: 400}},
	{"content-length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\nhi!", parseWant{kind: parseFail, status: 400}},
	{"content-length signed", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nhi", parseWant{kind: parseFail, status: 400}},
	{"bare LF after chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"bare LF after chunk data", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"bare LF after last chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"bare LF in trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"bare LF ends trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n", parseWant{kind: parseFail, status: 400}},
	{"bare CR in chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r;x\r\nok\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"chunk data too long", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokk\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
	{"chunk size line too long", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;" + strings.Repeat("e", 1100) + "\r\nok\r\n0\r\n\r\n", parseWant{kind: parseFail, status: 400}},
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
			res := p.parse([]byte(tc.in[:i]), netip.Addr{}, nil)
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
	res := p.parse([]byte(in), netip.Addr{}, nil)
	if res.kind != parseNeedMore || !res.expectContinue || res.need != len(in)+5 {
		t.Fatalf("got %+v", res)
	}
	res = p.parse([]byte(in+"hello"), netip.Addr{}, nil)
	if res.kind != parseOK || string(p.req.Body) != "hello" {
		t.Fatalf("got %+v", res)
	}
}

func TestParseHeaderLookupAnyCase(t *testing.T) {
	p := testParser()
	res := p.parse([]byte("GET / HTTP/1.1\r\nhOsT: h\r\nx-forwarded-for: 1.2.3.4\r\nSEC-WEBSOCKET-KEY: k\r\n\r\n"), netip.Addr{}, nil)
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
				res := p.parse(buf, netip.Addr{}, nil)
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
	p.parse(in, netip.Addr{}, nil)
	allocs := testing.AllocsPerRun(100, func() {
		if res := p.parse(in, netip.Addr{}, nil); res.kind != parseOK {
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
		p.parse(in, netip.Addr{}, nil)
	}
}

// streamOutcome is what a connection makes of a byte stream: the requests
// parsed, in order, then how it ended.
type streamOutcome struct {
	reqs   []string // method path query body http10 keep, per request
	status int      // the failure's status; 0 when the stream ran out
}

// feedStream parses in as a connection receives it, in pieces ending at
// the offsets cuts (ascending, the last one len(in)), as process does:
// the parse state and the needed length carry over between pieces.
func feedStream(p *requestParser, in []byte, cuts []int) streamOutcome {
	var out streamOutcome
	var cs chunkScan
	need, start := 0, 0
	for _, end := range cuts {
		for {
			buf := in[start:end]
			if len(buf) == 0 || need > len(buf) {
				break
			}
			res := p.parse(buf, netip.Addr{}, &cs)
			if res.kind == parseNeedMore {
				need = res.need
				break
			}
			if res.kind == parseFail {
				out.status = res.status
				return out
			}
			r := &p.req
			out.reqs = append(out.reqs, fmt.Sprintf("%s %s %q %q %v %v", r.Method, r.Path, r.Query, r.Body, r.HTTP10, res.keepAlive))
			start += res.consumed
			need = 0
		}
	}
	return out
}

// sameWhenSplit checks that run, which reads n bytes arriving in pieces
// that end at cuts, makes the same of them whole, cut in two at every
// byte (when n is at most every), and cut at random places (rounds times,
// pieces of at most most bytes).
func sameWhenSplit(t *testing.T, n, every, rounds, most int, run func(cuts []int) string) {
	t.Helper()
	whole := run([]int{n})
	if n <= every {
		for i := 1; i < n; i++ {
			if got := run([]int{i, n}); got != whole {
				t.Fatalf("cut at %d: %s\nwhole: %s", i, got, whole)
			}
		}
	}
	rng := rand.New(rand.NewSource(int64(n)))
	for range rounds {
		cuts := randomCuts(rng, n, most)
		if got := run(cuts); got != whole {
			t.Fatalf("cuts %v: %s\nwhole: %s", cuts, got, whole)
		}
	}
}

// randomCuts cuts n bytes into random pieces of 1 to most bytes: the
// offsets where they end.
func randomCuts(rng *rand.Rand, n, most int) []int {
	var cuts []int
	for i := 0; i < n; {
		i = min(i+1+rng.Intn(most), n)
		cuts = append(cuts, i)
	}
	return cuts
}

func (o streamOutcome) String() string {
	return fmt.Sprintf("%d requests %q, end %d", len(o.reqs), o.reqs, o.status)
}

// TestParseChunkedSegments: a chunked body fed in pieces, down to one byte
// at a time, with its progress kept between calls (chunkScan), gives what
// the whole stream gives, and decodes the same as net/http.
func TestParseChunkedSegments(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 300)
	var enc strings.Builder
	for i, n := 0, 1; i < len(body); n = n*3 + 1 {
		n = min(n, len(body)-i)
		fmt.Fprintf(&enc, "%x;e=%d\r\n%s\r\n", n, n, body[i:i+n])
		i += n
	}
	enc.WriteString("0\r\nX-T: 1\r\n\r\n")
	in := []byte("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + enc.String() +
		"GET /n HTTP/1.1\r\nHost: x\r\n\r\n")
	p := newRequestParser(8<<10, 1<<20)
	whole := feedStream(p, in, []int{len(in)})
	if len(whole.reqs) != 2 || whole.status != 0 || !strings.Contains(whole.reqs[0], body) {
		t.Fatalf("whole stream: %v", whole)
	}
	rng := rand.New(rand.NewSource(2))
	for round := 0; round < 50; round++ {
		var cuts []int
		for i := 0; i < len(in); {
			step := 1 + rng.Intn(200)
			if round == 0 {
				step = 1
			}
			i = min(i+step, len(in))
			cuts = append(cuts, i)
		}
		if got := feedStream(p, in, cuts); got.String() != whole.String() {
			t.Fatalf("round %d: %v, want %v", round, got, whole)
		}
	}
	// The reference decoder reads the same body.
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(req.Body); err != nil || string(b) != body {
		t.Fatalf("net/http: %v", err)
	}
}

// TestParseChunkedScansOnce: with its progress kept, each new segment
// costs the framing of that segment only. The bytes already scanned, the
// head included, are overwritten with garbage before each call but the
// last: a parser that read them again would fail. The body is decoded
// once, at the end.
func TestParseChunkedScansOnce(t *testing.T) {
	in, ends := chunkedSegmentsOf(100, 50, 50)
	p := newRequestParser(8<<10, 1<<20)
	var cs chunkScan
	garbage := bytes.Repeat([]byte{0}, len(in))
	for i, end := range ends {
		if i == len(ends)-1 {
			break
		}
		buf := bytes.Clone(in[:end])
		copy(buf[:cs.pos], garbage)
		last := cs.pos
		if res := p.parse(buf, netip.Addr{}, &cs); res.kind != parseNeedMore || cs.pos < last || int(cs.pos) > end {
			t.Fatalf("segment %d: kind %d status %d, pos %d after %d", i, res.kind, res.status, cs.pos, last)
		}
	}
	res := p.parse(in, netip.Addr{}, &cs)
	if res.kind != parseOK || len(p.req.Body) != 100*50 || cs != (chunkScan{}) {
		t.Fatalf("end: kind %d body %d state %+v", res.kind, len(p.req.Body), cs)
	}
}

// BenchmarkChunked600Segments parses a 600 KB chunked body arriving in
// 600 segments (one 1000-byte chunk each, then 100 chunks of 10 bytes
// each), parsing once per segment as a connection does. Before the
// progress was kept per connection, every segment decoded the body from
// its start again: 7.4 ms and 330 ms per op on the 2-core test machine.
func BenchmarkChunked600Segments(b *testing.B) {
	for _, chunk := range []int{1000, 10} {
		b.Run(fmt.Sprint("chunk=", chunk), func(b *testing.B) {
			in, ends := chunkedSegmentsOf(600, 1000, chunk)
			p := newRequestParser(8<<10, 1<<20)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var cs chunkScan
				for _, end := range ends {
					p.parse(in[:end], netip.Addr{}, &cs)
				}
				if len(p.req.Body) != 600*1000 {
					b.Fatalf("body %d", len(p.req.Body))
				}
			}
		})
	}
}

// chunkedSegmentsOf returns a chunked request of segs segments of
// segBytes each, made of chunks of chunk bytes, and the offset where each
// segment ends.
func chunkedSegmentsOf(segs, segBytes, chunk int) ([]byte, []int) {
	var b bytes.Buffer
	b.WriteString("POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	data := strings.Repeat("a", chunk)
	var ends []int
	for range segs {
		for range segBytes / chunk {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", chunk, data)
		}
		ends = append(ends, b.Len())
	}
	b.WriteString("0\r\n\r\n")
	ends[len(ends)-1] = b.Len()
	return b.Bytes(), ends
}

// FuzzParseRequest: whatever the bytes, the parser never panics, answers
// only the statuses of C-03/C-08, keeps bodies within the limit, and a
// connection makes the same of a stream however it is split: whole, cut
// in two at every byte (short inputs), and cut at random places (the
// nats-server way of testing a parser). Chunked bodies keep their
// progress between the pieces, as on a connection.
func FuzzParseRequest(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
	}
	p := newRequestParser(1024, 4096)
	f.Fuzz(func(t *testing.T, in []byte) {
		res := p.parse(in, netip.Addr{}, nil)
		switch res.kind {
		case parseOK:
			if res.consumed <= 0 || res.consumed > len(in) {
				t.Fatalf("consumed %d of %d", res.consumed, len(in))
			}
			method, path, body := string(p.req.Method), string(p.req.Path), string(p.req.Body)
			// The request alone parses the same.
			again := p.parse(bytes.Clone(in[:res.consumed]), netip.Addr{}, nil)
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

		sameWhenSplit(t, len(in), 512, 8, 64, func(cuts []int) string { return feedStream(p, in, cuts).String() })
	})
}

// TestParseChunkedAllocs: a chunked body, whole or in segments, is
// parsed without allocating once the loop's body buffer has grown.
func TestParseChunkedAllocs(t *testing.T) {
	in, ends := chunkedSegmentsOf(20, 1000, 100)
	p := testParser()
	parseAll := func() {
		var cs chunkScan
		for _, end := range ends {
			p.parse(in[:end], netip.Addr{}, &cs)
		}
		if len(p.req.Body) != 20*1000 {
			t.Fatalf("body %d", len(p.req.Body))
		}
	}
	parseAll()
	if allocs := testing.AllocsPerRun(20, parseAll); allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}
