package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The test binary doubles as the client process of "bench idle".
func TestMain(m *testing.M) {
	if os.Getenv("HALLEY_BENCH_TEST_CLIENT") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv("HALLEY_BENCH_TEST_SERVER") == "1" {
		fakeHalley(os.Args[1:])
		return
	}
	clientCommand = func() (string, []string, []string, error) {
		exe, err := os.Executable()
		return exe, []string{"client"}, []string{"HALLEY_BENCH_TEST_CLIENT=1"}, err
	}
	os.Exit(m.Run())
}

func TestHistogramExactSmall(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 {
		t.Fatalf("count/min/max %d %d %d", h.Count(), h.Min(), h.Max())
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := h.Percentile(c.q); got != c.want {
			t.Errorf("p%v = %d, want %d", c.q, got, c.want)
		}
	}
	if h.Mean() != 50.5 {
		t.Errorf("mean %v", h.Mean())
	}
}

func TestHistogramRelativeError(t *testing.T) {
	var h Histogram
	const n = 100000
	for v := int64(1); v <= n; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * n * 1000
		got := float64(h.Percentile(q))
		if got < want || got > want*(1+1.0/64)+1 {
			t.Errorf("p%v = %v, want within 1/64 above %v", q, got, want)
		}
	}
	if h.Percentile(1) != n*1000 {
		t.Errorf("max %d", h.Percentile(1))
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value falls in a bucket whose upper bound is ≥ it and within 1/64.
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 123456789, 1 << 40, 1<<62 + 12345, 1<<63 - 1} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("index %d out of range for %d", i, v)
		}
		hi := histHigh(i)
		if hi < v || float64(hi-v) > float64(v)/64+1 {
			t.Errorf("v=%d bucket %d high %d", v, i, hi)
		}
		if i > 0 && histHigh(i-1) >= v {
			t.Errorf("v=%d also fits bucket %d", v, i-1)
		}
	}
	var h Histogram
	if h.Percentile(0.5) != 0 {
		t.Error("empty histogram")
	}
	h.Record(-5)
	if h.Max() != 0 {
		t.Error("negative not clamped")
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for v := int64(0); v < 5000; v++ {
		all.Record(v * 37)
		if v%2 == 0 {
			a.Record(v * 37)
		} else {
			b.Record(v * 37)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	for _, q := range []float64{0.1, 0.5, 0.99} {
		if m.Percentile(q) != all.Percentile(q) {
			t.Errorf("merged p%v %d != %d", q, m.Percentile(q), all.Percentile(q))
		}
	}
	if m.Min() != 0 || m.Max() != 4999*37 || m.Count() != 5000 {
		t.Errorf("merged min/max/count %d %d %d", m.Min(), m.Max(), m.Count())
	}
}

func TestSlope(t *testing.T) {
	got, err := slope(100<<20, 100<<20+16000*1000, 2000, 18000)
	if err != nil || got != 1000 {
		t.Fatalf("slope %v %v", got, err)
	}
	if got, _ := slope(500, 100, 10, 20); got != -40 {
		t.Errorf("negative slope %v", got)
	}
	if _, err := slope(1, 2, 5, 5); err == nil {
		t.Error("equal counts accepted")
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\thalley\nUmask:\t0022\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 100 kB\n"
	got, err := parseVmRSS([]byte(status))
	if err != nil || got != 12345*1024 {
		t.Fatalf("got %d %v", got, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\nState:\tS\n")); err == nil {
		t.Error("missing VmRSS accepted")
	}
	if _, err := parseVmRSS([]byte("VmRSS:\t x kB\n")); err == nil {
		t.Error("bad number accepted")
	}
	// The live file of this process parses.
	if r, err := readRSS(os.Getpid()); err != nil || r <= 0 {
		t.Errorf("own RSS %d %v", r, err)
	}
}

func TestParseStatAndSockstat(t *testing.T) {
	stat := "1234 (my (odd) prog) S 77 1234 1234 0 -1 4194304 100 0 0 0 250 31 0 0 20 0 1 0"
	pp, err := parseStatPPID([]byte(stat))
	if err != nil || pp != 77 {
		t.Fatalf("ppid %d %v", pp, err)
	}
	if cpu, err := parseStatCPU([]byte(stat)); err != nil || cpu != 281 {
		t.Fatalf("cpu %d %v", cpu, err)
	}
	if cpu, err := treeCPU(os.Getpid()); err != nil || cpu < 0 {
		t.Fatalf("own cpu %v %v", cpu, err)
	}
	ss := "sockets: used 13\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 42\nUDP: inuse 0 mem 3\n"
	if m, err := parseSockstatTCPMem([]byte(ss)); err != nil || m != 42 {
		t.Fatalf("mem %d %v", m, err)
	}
	if _, err := parseSockstatTCPMem([]byte("UDP: inuse 0 mem 3\n")); err == nil {
		t.Error("no TCP line accepted")
	}
	slab := "slabinfo - version: 2.1\n# name <active_objs> <num_objs> <objsize> ...\nTCP 10 20 2368 13 8 : tunables\nsock_inode_cache 4 19 832 19 4\nother 1000 1000 64 1 1\n"
	if got := parseSlabBytes([]byte(slab), socketSlabs); got != 10*2368+4*832 {
		t.Errorf("slab %d", got)
	}
	if rss, err := treeRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("treeRSS %d %v", rss, err)
	}
}

func TestSourceIP(t *testing.T) {
	perIP := 20
	seen := map[string]int{}
	for i := 0; i < 100000; i++ {
		ip, err := sourceIP(i, perIP)
		if err != nil {
			t.Fatal(err)
		}
		if ip[0] != 127 || ip[1] == 0 || ip[3] == 0 || ip[3] == 255 {
			t.Fatalf("connection %d: bad source %v", i, ip)
		}
		seen[ip.String()]++
	}
	for ip, n := range seen {
		if n > perIP {
			t.Fatalf("%s used %d times", ip, n)
		}
	}
	if len(seen) != 5000 {
		t.Errorf("%d addresses for 100000 connections", len(seen))
	}
	if _, ok := seen["127.0.0.1"]; ok {
		t.Error("127.0.0.1 used")
	}
	a, _ := sourceIP(19, 20)
	b, _ := sourceIP(20, 20)
	if a.Equal(b) {
		t.Error("21st connection shares an address")
	}
	if _, err := sourceIP(0, 0); err == nil {
		t.Error("perIP 0 accepted")
	}
	if _, err := sourceIP(255*256*254*20, 20); err == nil {
		t.Error("overflow accepted")
	}
}

func TestFormBody(t *testing.T) {
	got := formBody("api_key", "k1", "qname", "demo-ch a", "msg", "a&b=c+d%")
	want := "api_key=k1&qname=demo-ch+a&msg=a%26b%3Dc%2Bd%25"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	v, err := url.ParseQuery(got)
	if err != nil || v.Get("msg") != "a&b=c+d%" || v.Get("qname") != "demo-ch a" {
		t.Fatalf("round trip %v %v", v, err)
	}
	c := writeConfig{Kind: "halley", Channels: 2, Size: 5, Key: "K", User: "u", ChanPrefix: "p"}
	reqs := buildWriteRequests(&c, "h:1")
	wantReq := "POST /write HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 30\r\n\r\napi_key=K&qname=u-p1&msg=xxxxx"
	if string(reqs[1]) != wantReq {
		t.Errorf("request %q", reqs[1])
	}
	c.Kind = "nchan"
	c.ChanPrefix = "a-b.c"
	reqs = buildWriteRequests(&c, "h:1")
	if !bytes.HasPrefix(reqs[0], []byte("POST /pub/abc0 HTTP/1.1\r\n")) || !bytes.HasSuffix(reqs[0], []byte("Content-Length: 5\r\n\r\nxxxxx")) {
		t.Errorf("nchan request %q", reqs[0])
	}
}

func TestReadResponse(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: 7\r\nLast-Modified: Mon\r\n\r\nhello" +
		"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n" +
		"HTTP/1.1 304 Not Modified\r\nX-Long: " + strings.Repeat("z", 100) + "\r\n\r\n" +
		"HTTP/1.0 200 OK\r\n\r\nuntil eof"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	var r response
	if err := readResponse(br, &r, 3, false); err != nil || r.status != 200 || string(r.body) != "hel" || r.etag != "7" || r.lastModified != "Mon" {
		t.Fatalf("1: %v %+v", err, r)
	}
	if err := readResponse(br, &r, 100, false); err != nil || r.status != 201 || string(r.body) != "abcde" || r.close {
		t.Fatalf("2: %v %+v", err, r)
	}
	if err := readResponse(br, &r, 100, false); err != nil || r.status != 304 || len(r.body) != 0 {
		t.Fatalf("3: %v %+v", err, r)
	}
	if err := readResponse(br, &r, 100, false); err != nil || string(r.body) != "until eof" || !r.close {
		t.Fatalf("4: %v %+v", err, r)
	}
	if err := readResponse(br, &r, 100, false); err != io.EOF {
		t.Fatalf("5: %v", err)
	}
	if err := readResponse(bufio.NewReader(strings.NewReader("garbage\r\n\r\n")), &r, 0, false); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestArgs(t *testing.T) {
	if c, err := parseCounts("2000, 18000"); err != nil || len(c) != 2 || c[1] != 18000 {
		t.Errorf("counts %v %v", c, err)
	}
	for _, bad := range []string{"2000", "18000,2000", "0,5", "a,b", ""} {
		if _, err := parseCounts(bad); err == nil {
			t.Errorf("counts %q accepted", bad)
		}
	}
	if got := procTargets(20000, 18000, 2); got[0] != 18000 || got[1] != 2000 {
		t.Errorf("targets %v", got)
	}
	if got := procTargets(2000, 18000, 2); got[0] != 2000 || got[1] != 0 {
		t.Errorf("targets %v", got)
	}
	if m, ok := parseStatLine("stat target=5 open=3 failed=1 closed=0 msgs=9"); !ok || m["open"] != 3 || m["target"] != 5 {
		t.Errorf("stat %v", m)
	}
	var out, errb bytes.Buffer
	if Main(nil, &out, &errb) != 2 || Main([]string{"nope"}, &out, &errb) != 2 {
		t.Error("bad command not refused")
	}
	if Main([]string{"help"}, &out, &errb) != 0 || !strings.Contains(out.String(), "idle") {
		t.Error("help")
	}
	if Main([]string{"write", "--conns", "x"}, &out, &errb) != 2 {
		t.Error("bad flag not refused")
	}
	if Main([]string{"write", "--key", "--user", "demo", "--duration", "1s"}, &out, &errb) != 2 {
		t.Error("leftover argument not refused")
	}
	if Main([]string{"write", "--kind", "halley", "--target", "http://127.0.0.1:1"}, &out, &errb) != 1 {
		t.Error("halley write without key not refused")
	}
	if Main([]string{"idle", "--mode", "sse", "--pid", "1"}, &out, &errb) != 1 {
		t.Error("bad mode not refused")
	}
	if Main([]string{"idle", "--counts", "5", "--pid", "1"}, &out, &errb) != 2 {
		t.Error("one count not refused")
	}
	for _, tc := range []struct {
		kind, mode, qname string
		g                 int
		resume, want      string
	}{
		{"halley", "longpoll", "u-c", 7, "", "/read?qname=u-c1&timeout=120"},
		{"halley", "longpoll", "u-c", 7, "t 1", "/read?qname=u-c1&timeout=120&tick=t+1"},
		{"halley", "ws", "u-c", 7, "", "/read/ws?qname=u-c1"},
		{"nchan", "ws", "u-c", 8, "", "/sub/uc2"},
		{"nchan", "longpoll", "u-c", 8, "ignored", "/sub/uc2"},
		{"cometify", "ws", "bx-c", 4, "", "/K/listen?identifiers=bxc1"},
		{"cometify", "longpoll", "bxc", 5, "", "/K/poll?identifiers=bxc2&timeout=120"},
		{"cometify", "longpoll", "bxc", 5, "bxc2:17", "/K/poll?identifiers=bxc2%3A17&timeout=120"},
	} {
		c := clientConfig{Kind: tc.kind, Mode: tc.mode, QName: tc.qname, Key: "K", Channels: 3, Timeout: 120}
		if p := c.subPath(tc.g, tc.resume); p != tc.want {
			t.Errorf("%s %s %q: path %q, want %q", tc.kind, tc.mode, tc.resume, p, tc.want)
		}
	}
	for _, tc := range []struct {
		kind, body, resume string
		msgs               bool
	}{
		{"halley", `{"code":"ok","messages":[["a","x"],["b","y"]]}`, "b", true},
		{"halley", `{"code":"ok","messages":[]}`, "", false},
		{"halley", `{"code":"ok","messages":[["7","m"]]}`, "7", true},
		{"halley", `{"code":"ok","messages":[["7","a\"b"]]}`, "7", true},
		{"halley", `{"code":"ok","messages":[["t\"1","x"]]}`, `t"1`, true},
		{"halley", `{"code":"ok","messages":[["7"]]}`, "7", true},
		{"halley", `{"code":"ok","messages":[["7","m"]],"x":1}`, "7", true},
		{"halley", `{"code":"ok","messages":[["7","m"]`, "", false},
		{"cometify", `{"code":"ok","pushes":[{"identifier":"a","id":3,"data":"x"}],"since":"a:3"}`, "a:3", true},
		{"cometify", `{"code":"ok","pushes":[],"since":"a:0"}`, "a:0", false},
		{"cometify", `{"code":"ok","pushes":[],"since":"a:0","gap":true,"gap_identifiers":["a"]}`, "a:0", false},
		{"cometify", `not json`, "", false},
		{"cometify", `{"code":"ok","pushes":[{"identifier":"a","id":4,"data":"],\"since\":\"x"}],"since":"a:4"}`, "a:4", true},
		{"cometify", `{"code":"ok","pushes":[{"identifier":"a","id":4,"data":"x"}],"since":"a\u003a4"}`, "a:4", true},
		{"cometify", `{"code":"ok","pushes":[{"identifier":"a","id":4,"data":"x"}],"since":"a:4"`, "", false},
	} {
		if r, m := mustKind(tc.kind).pollAnswer([]byte(tc.body)); r != tc.resume || m != tc.msgs {
			t.Errorf("%s %s: resume %q msgs %v", tc.kind, tc.body, r, m)
		}
		// Halley's compact answers skip the decoder: the same result.
		decode := map[string]func([]byte) (string, bool){"halley": ezPollJSON, "cometify": cfPollJSON}[tc.kind]
		if r, m := decode([]byte(tc.body)); r != tc.resume || m != tc.msgs {
			t.Errorf("decoder: %s: resume %q msgs %v", tc.body, r, m)
		}
	}
	for _, bad := range []clientConfig{
		{Kind: "cometify", QName: "bxc"},            // no key
		{Kind: "cometify", QName: "1bxc", Key: "K"}, // identifier starts with a digit
		{Kind: "cometify", QName: "-_-", Key: "K"},  // with a dash
		{Kind: "ezcomet", QName: "u-c", Key: "K"},   // unknown kind
		{Kind: "halley", QName: "uc", Key: "K"},     // qname without user
	} {
		bad.Mode, bad.Target, bad.PerIP, bad.Channels, bad.DialConc, bad.MaxLife = "ws", "http://127.0.0.1:1", 1, 1, 1, time.Second
		if err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	// RFC 6455 example.
	if wsAccept("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Error("accept")
	}
	if a, h, err := hostPort("http://127.0.0.1:9080/"); err != nil || a != "127.0.0.1:9080" || h != "127.0.0.1:9080" {
		t.Errorf("hostPort %q %q %v", a, h, err)
	}
	if _, _, err := hostPort("https://x:1"); err == nil {
		t.Error("https accepted")
	}
}

func TestWriteEndToEnd(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/write" || r.FormValue("api_key") != "K" ||
			!strings.HasPrefix(r.FormValue("qname"), "u-") || len(r.FormValue("msg")) != 100 {
			w.WriteHeader(400)
			return
		}
		if n.Add(1) > 300 {
			time.Sleep(5 * time.Millisecond) // keep the run to a few hundred requests
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"code":"ok","tick":"t"}`)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := Main([]string{"write", "--target", srv.URL, "--key", "K", "--user", "u", "--conns", "4",
		"--duration", "300ms", "--channels", "3", "--json", "--pid", fmt.Sprint(os.Getpid())}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), `"errors":0`) || !strings.Contains(out.String(), `"200":`) ||
		!strings.Contains(out.String(), `"server_cpu_us_per_req":`) {
		t.Fatalf("result %s", out.String())
	}
	// Wrong answers count as errors.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, `{"code":"error"}`)
	}))
	defer bad.Close()
	res, err := runWrite(context.Background(), writeConfig{Target: bad.URL, Kind: "halley", Key: "K", User: "u",
		Conns: 2, Duration: 100 * time.Millisecond, Channels: 1, Size: 1, ChanPrefix: "p"}, nil)
	if err != nil || res.Requests == 0 || res.Errors != res.Requests {
		t.Fatalf("bad answers: %+v %v", res, err)
	}
}

// lpServer is a tiny long-poll server: it holds every GET /read (EZComet)
// and GET /K/poll (Cometify) until the client goes away, and counts the
// requests it holds. The first poll of each connection is answered at once
// with one message, to exercise the re-issue with a tick or a since.
func lpServer(t *testing.T) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held atomic.Int64
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				q := req.URL.Query()
				var answer string
				next := func(r *http.Request) bool { return r.URL.Query().Get("tick") == "t1" }
				switch {
				case req.URL.Path == "/read" && strings.HasPrefix(q.Get("qname"), "u-"):
					answer = `{"code":"ok","messages":[["t1","m"]]}`
				case req.URL.Path == "/K/poll" && strings.HasPrefix(q.Get("identifiers"), "uc") &&
					!strings.Contains(q.Get("identifiers"), ":") && q.Get("timeout") == "120":
					id := q.Get("identifiers")
					answer = `{"code":"ok","pushes":[{"identifier":"` + id + `","id":3,"data":"m"}],"since":"` + id + `:3"}`
					next = func(r *http.Request) bool { return r.URL.Query().Get("identifiers") == id+":3" }
				default:
					fmt.Fprintf(c, "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(answer), answer)
				req, err = http.ReadRequest(br)
				if err != nil || !next(req) {
					return
				}
				held.Add(1)
				defer held.Add(-1)
				io.Copy(io.Discard, br)
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &held
}

func TestIdleLongpollEndToEnd(t *testing.T) {
	url, held := lpServer(t)
	// Both client readers: epoll (the default) and a goroutine per
	// connection.
	for _, x := range []struct {
		kind, qname string
		readers     int
	}{{"halley", "u-c", 0}, {"cometify", "uc", 0}, {"halley", "u-c", -1}, {"cometify", "uc", -1}} {
		c := idleConfig{
			clientConfig: clientConfig{Target: url, Kind: x.kind, Mode: "longpoll", QName: x.qname, Key: "K",
				PerIP: 20, Channels: 5, DialConc: 8, MaxLife: time.Minute, Timeout: 120, readerConfig: readerConfig{Readers: x.readers}},
			PID: os.Getpid(), Counts: []int{20, 40}, Settle: 100 * time.Millisecond,
			OpenTimeout: 20 * time.Second, PerProcess: 15, // 3 client processes
		}
		var log bytes.Buffer
		res, err := runIdle(context.Background(), c, &log)
		if err != nil {
			t.Fatalf("%s: %v\n%s", x.kind, err, log.String())
		}
		if res.Procs != 3 || len(res.Steps) != 2 || res.Steps[0].Open != 20 || res.Steps[1].Open != 40 {
			t.Fatalf("%s: %+v\n%s", x.kind, res, log.String())
		}
		if res.Steps[1].ClientRSS <= 0 || res.Steps[1].ServerRSS <= 0 || len(res.Warnings) != 0 {
			t.Fatalf("%s: %+v", x.kind, res)
		}
		// The clients quit: the server sees every poll go away.
		deadline := time.Now().Add(10 * time.Second)
		for held.Load() != 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if held.Load() != 0 {
			t.Fatalf("%s: %d polls still held after the clients stopped", x.kind, held.Load())
		}
	}
}

func TestClientExitsAtMaxLife(t *testing.T) {
	url, _ := lpServer(t)
	var out, errb bytes.Buffer
	pr, pw := io.Pipe()
	defer pw.Close()
	start := time.Now()
	code := cmdClient([]string{"--target", url, "--mode", "longpoll", "--qname", "u-c", "--open", "3",
		"--max-life", "500ms"}, pr, &out, &errb)
	if code != 0 || time.Since(start) > 5*time.Second || !strings.Contains(out.String(), "exit max-life") {
		t.Fatalf("exit %d after %v: %s %s", code, time.Since(start), out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "open=3") {
		t.Errorf("no progress report: %s", out.String())
	}
}

func TestWSHold(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	var st clientStats
	done := make(chan error, 1)
	go func() { done <- wsHold(cli, bufio.NewReaderSize(cli, 16), &st) }()
	long := bytes.Repeat([]byte("y"), 300)
	frames := [][]byte{
		{0x89, 2, 'h', 'i'},                       // ping "hi"
		{0x81, 5, 'h', 'e', 'l', 'l', 'o'},        // text
		append([]byte{0x82, 126, 1, 44}, long...), // binary, 16-bit length
		{0x01, 1, 'a'}, {0x80, 1, 'b'},            // fragmented text: one message
	}
	for _, f := range frames {
		if _, err := srv.Write(f); err != nil {
			t.Fatal(err)
		}
		if f[0] == 0x89 {
			pong := make([]byte, 8)
			if _, err := io.ReadFull(srv, pong); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pong, []byte{0x8A, 0x82, 0, 0, 0, 0, 'h', 'i'}) {
				t.Fatalf("pong % x", pong)
			}
		}
	}
	srv.Write([]byte{0x88, 2, 0x03, 0xe8}) // close 1000
	echo := make([]byte, 8)
	if _, err := io.ReadFull(srv, echo); err != nil || echo[0] != 0x88 || echo[6] != 0x03 || echo[7] != 0xe8 {
		t.Fatalf("close echo % x %v", echo, err)
	}
	if err := <-done; err != io.EOF {
		t.Fatalf("end %v", err)
	}
	if st.msgs.Load() != 3 {
		t.Fatalf("%d messages", st.msgs.Load())
	}
}
