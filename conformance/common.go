package conformance

import (
	"fmt"
	"strings"
	"time"
)

// commonCases are the C rules that apply to every API.
func commonCases() []ruleCase {
	return []ruleCase{
		{rule: "C-01", what: "one port serves HTTP/1.1 and WebSocket upgrades; --also addresses serve the same", run: checkOnePort},
		{rule: "C-02", what: "keep-alive, pipelining in order (behind a held poll too, a 1.3 MB burst), split requests, Connection: close, HTTP/1.0, absolute-form target, header names in any case", run: checkHTTP11},
		{rule: "C-03", what: "JSON answers and errors with matching status; unparsable request → JSON 400/505 and close", run: checkJSONAnswers},
		{rule: "C-03", what: "framing as RFC 9112: Transfer-Encoding other than chunked, beside Content-Length or in HTTP/1.0, differing Content-Lengths, bare LF in chunk framing → JSON 400, close, nothing smuggled; Chunked in any case accepted; a chunked body in 600 segments", run: checkFraming},
		{rule: "C-04", what: "status codes and their precedence 405, 401, 400, 413, 403", run: checkStatusPrecedence},
		{rule: "C-05", what: "parameters from query and form body: repeats, body wins, +, percent-decoding, UTF-8, NUL", run: checkParameters},
		{rule: "C-06", what: "read-side CORS, Cache-Control, OPTIONS preflight and JSONP, errors included", run: checkCORSAndJSONP},
		{rule: "C-07", what: "client IP is the TCP peer; X-Forwarded-For (right-most untrusted) only from a --trusted-proxy; IPv6 per /64 (seen through the listener cap)", run: checkClientIP, timeout: 90 * time.Second},
		{rule: "C-08", what: "limits: header size 431, body size 413, header deadline, WebSocket frame 1009, slow consumer (EZComet and Cometify), idle keep-alive", run: checkLimits, timeout: 90 * time.Second},
		{rule: "C-08", what: "output bound, clients that read: 225 pipelined 64 KiB pushes all answered in order; /read answers within --read-batch-bytes, continued to the end exactly once; WebSocket backlogs past --max-unsent-bytes (EZComet catch-up, Cometify replay) read through a 4 KB receive window, none cut", run: checkOutbound, timeout: 150 * time.Second},
		{rule: "C-08", what: "output bound, a client that pipelines 1000 /reads and reads nothing: others are served, and (with --pid) the server's memory grows by less than 2× --max-unsent-bytes", run: checkUnreadPipeline, alone: true, timeout: 90 * time.Second},
		{rule: "C-09", what: "an ok write is readable at once from a new connection (kill -9 survival is the separate crash test)", run: checkDurableRead},
		{rule: "C-10", what: "GET /healthz and GET /metrics", run: checkHealthMetrics},
	}
}

func checkOnePort(t *caseT) {
	w := t.dial()
	w.send(t.request("GET", "/healthz", ""))
	if r := w.read(); r.status != 200 {
		t.Fatalf("GET /healthz: want 200, got %s", r)
	}
	// The same connection then upgrades: one port, one parser.
	c, r := t.openWSOn(w, readPath("/read/ws", t.qname(), "", -1))
	if c == nil {
		t.Fatalf("WebSocket upgrade after a keep-alive request on the same connection: want 101, got %s", r)
	}
	c.close()
	t.mustWS(readPath("/read/ws", t.qname(), "", -1)).close()

	// Every address serves the same service: a write on one is read on
	// the others, over HTTP and WebSocket.
	if len(t.cfg.Also) == 0 {
		t.Notef("extra --listen addresses (pass --also URL)")
	}
	for _, addr := range t.cfg.Also {
		o := t.at(addr)
		q := t.qname()
		s := o.openEZ(viaWS, q, "", "")
		tick := t.writeMsg(q, "via "+t.cfg.Target, "")
		s.expect(5*time.Second, []string{"via " + t.cfg.Target}, []string{tick}, "WebSocket on "+addr)
		s.close()
		tick2 := o.writeMsg(q, "via "+addr, "")
		if got, _ := t.readAll(q, tick); len(got) != 1 || got[0].tick != tick2 {
			t.Fatalf("a write on %s read on %s: got %v", addr, t.cfg.Target, got)
		}
	}
	t.Notef("the JS client paths (JS rules)")
}

func checkHTTP11(t *caseT) {
	key, q := t.cfg.Account.Key, t.qname()
	w := t.dial()
	for i := range 2 {
		w.send(t.request("GET", "/healthz", ""))
		if r := w.read(); r.status != 200 || r.close {
			t.Fatalf("keep-alive request %d: want 200 and no close, got %s (close=%v)", i+1, r, r.close)
		}
	}

	// Pipelined in one write: each answer must reflect the ones before it.
	pipe := t.request("POST", "/write", form("api_key", key, "qname", q, "msg", "a", "tick", "p1")) +
		t.request("GET", "/healthz", "") +
		t.request("POST", "/write", form("api_key", key, "qname", q, "msg", "b", "tick", "p2")) +
		t.request("GET", readPath("/read", q, "", 0), "")
	w.send(pipe)
	if m := t.wantOK(w.read(), "pipelined write 1"); m["tick"] != "p1" {
		t.Fatalf("pipelined answer 1: want tick p1, got %v", m["tick"])
	}
	if m := t.wantOK(w.read(), "pipelined healthz"); m["tick"] != nil {
		t.Fatalf("pipelined answer 2 should be /healthz, got %v", m)
	}
	if m := t.wantOK(w.read(), "pipelined write 2"); m["tick"] != "p2" {
		t.Fatalf("pipelined answer 3: want tick p2, got %v", m["tick"])
	}
	a := t.decodePoll(w.read(), 0)
	if err := sameItems(a.messages, []string{"a", "b"}, []string{"p1", "p2"}); err != nil {
		t.Fatalf("pipelined read after two pipelined writes: %v", err)
	}

	// A held long-poll keeps the answers behind it in order.
	e := t.qname()
	start := time.Now()
	w.send(t.request("GET", readPath("/read", e, "", 1), "") + t.request("GET", "/healthz", ""))
	if a := t.decodePoll(w.read(), 0); len(a.messages) != 0 {
		t.Fatalf("pipelined long-poll on an empty channel: got %v", a.messages)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("pipelined long-poll with timeout=1 answered after %v", took.Round(time.Millisecond))
	}
	if m := t.wantOK(w.read(), "healthz pipelined behind a long-poll"); len(m) != 1 {
		t.Fatalf("the answer after a pipelined long-poll should be /healthz, got %v", m)
	}

	// A request that arrives a few bytes at a time is parsed whole.
	req := t.request("POST", "/write", form("api_key", key, "qname", q, "msg", "split", "tick", "p0"))
	for i := 0; i < len(req); i += 7 {
		w.send(req[i:min(i+7, len(req))])
		t.sleep(2 * time.Millisecond)
	}
	if m := t.wantOK(w.read(), "a request sent 7 bytes at a time"); m["tick"] != "p0" {
		t.Fatalf("a request sent 7 bytes at a time answered %v", m)
	}

	// Connection: close is honoured.
	w.send(t.request("GET", "/healthz", "", "Connection: close"))
	if r := w.read(); r.status != 200 {
		t.Fatalf("Connection: close request: want 200, got %s", r)
	}
	w.expectClosed(3*time.Second, "after a Connection: close request")

	// HTTP/1.0, whose default is one request per connection.
	w = t.dial()
	w.send("GET /healthz HTTP/1.0\r\n\r\n")
	if r := w.read(); r.status != 200 || !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("HTTP/1.0 GET /healthz: want 200 {\"code\":\"ok\"}, got %s", r)
	}
	w.expectClosed(3*time.Second, "after an HTTP/1.0 request without keep-alive")
	w = t.dial()
	body := form("api_key", key, "qname", q, "msg", "c", "tick", "p3")
	w.send(fmt.Sprintf("POST /write HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	t.wantOK(w.read(), "HTTP/1.0 POST /write")

	// Absolute-form target, as the Cometify seed's PHP example sends.
	body = form("api_key", key, "qname", q, "msg", "d", "tick", "p4")
	r := t.do("POST", "http://"+t.cfg.host()+"/write", body)
	t.wantOK(r, "absolute-form POST http://host/write")
	r = t.do("GET", "http://"+t.cfg.host()+readPath("/read", q, "p3", 0), "")
	if err := sameItems(t.decodePoll(r, 0).messages, []string{"d"}, []string{"p4"}); err != nil {
		t.Fatalf("absolute-form GET /read: %v", err)
	}

	// Header names in any case.
	body = form("api_key", key, "qname", q, "msg", "e", "tick", "p5")
	w = t.dial()
	w.send(fmt.Sprintf("POST /write HTTP/1.1\r\nhost: %s\r\ncontent-type: application/x-www-form-urlencoded\r\nCONTENT-LENGTH: %d\r\ncOnNeCtIoN: close\r\n\r\n%s", t.cfg.host(), len(body), body))
	t.wantOK(w.read(), "lower/upper-case header names")
	w.expectClosed(3*time.Second, "after a cOnNeCtIoN: close request")
	got, _ := t.readAll(q, "")
	if err := sameItems(got, []string{"a", "b", "split", "c", "d", "e"}, []string{"p1", "p2", "p0", "p3", "p4", "p5"}); err != nil {
		t.Fatalf("reading back every write of this case: %v", err)
	}
	pipelineBurst(t)
}

// pipelineBurst sends 300 writes of 4 KiB (1.3 MB, each request within
// every limit) in one burst: all must be answered, in order. A server may
// stop reading while it works through them, but not drop the connection:
// the writes it accepted would go unanswered.
func pipelineBurst(t *caseT) {
	const n = 300
	q := t.qname()
	msg := strings.Repeat("b", 4096)
	var burst strings.Builder
	for i := range n {
		burst.WriteString(t.request("POST", "/write", form("api_key", t.cfg.Account.Key, "qname", q, "msg", msg, "tick", fmt.Sprint("b", i))))
	}
	w := t.dial()
	go func() { _ = w.trySend(burst.String()) }()
	for i := range n {
		r, err := w.readErr("POST", defaultWait)
		if err != nil {
			t.Fatalf("a burst of %d pipelined 4 KiB writes (%d bytes) in one send: answer %d: %v", n, burst.Len(), i+1, err)
		}
		if m := t.wantOK(r, fmt.Sprintf("pipelined burst write %d of %d", i+1, n)); m["tick"] != fmt.Sprint("b", i) {
			t.Fatalf("pipelined burst: answer %d has tick %v, want b%d", i+1, m["tick"], i)
		}
	}
}

func checkJSONAnswers(t *caseT) {
	t.wantOK(t.write("api_key", t.cfg.Account.Key, "qname", t.qname(), "msg", "x"), "successful write")
	t.wantError(t.write("msg", "x"), 401, "write without api_key")
	t.wantError(t.do("GET", "/no-such-path-"+randHex(6), ""), 404, "unknown path")
	t.wantError(t.do("DELETE", "/write", ""), 405, "DELETE /write")

	bad := []struct{ raw, what string }{
		{"GARBAGE\r\n\r\n", "request line without method, target and version"},
		{"GET /healthz\r\nHost: x\r\n\r\n", "request line without version"},
		{"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", "header line without a colon"},
		{"POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "non-numeric Content-Length"},
	}
	for _, b := range bad {
		w := t.dial()
		w.send(b.raw)
		t.wantError(w.read(), 400, b.what)
		w.expectClosed(3*time.Second, "after answering "+b.what)
	}
	w := t.dial()
	w.send("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")
	t.wantError(w.read(), 505, "HTTP/2.0 request line")
	w.expectClosed(3*time.Second, "after answering HTTP/2.0 with 505")
}

func checkStatusPrecedence(t *caseT) {
	key, user := t.cfg.Account.Key, t.cfg.Account.User
	badKey := randHex(32)
	other := "zz" + randHex(10)
	big := strings.Repeat("x", 4097)
	cases := []struct {
		method, body string
		status       int
		what         string
	}{
		{"DELETE", form("api_key", badKey), 405, "DELETE /write with an unknown key (405 before 401)"},
		{"PUT", form("api_key", key, "qname", user+"-c", "msg", "x"), 405, "PUT /write"},
		{"POST", form("api_key", badKey, "msg", "x"), 401, "unknown key and no qname (401 before 400)"},
		{"POST", form("msg", "x"), 401, "no key at all"},
		{"POST", form("api_key", key, "msg", "x"), 400, "no qname"},
		{"POST", form("api_key", key, "qname", user+"-bad!chan", "msg", big), 400, "bad channel and 4097-byte msg (400 before 413)"},
		{"POST", form("api_key", key, "qname", other+"-bad!chan", "msg", "x"), 400, "another user's qname with a bad channel (400 before 403)"},
		{"POST", form("api_key", key, "qname", other+"-chan", "msg", big), 413, "another user's qname and 4097-byte msg (413 before 403)"},
		{"POST", form("api_key", key, "qname", other+"-chan", "msg", "x"), 403, "another user's qname"},
	}
	for _, c := range cases {
		t.wantError(t.do(c.method, "/write", c.body), c.status, c.what)
	}
	t.wantError(t.do("GET", "/no-such-path-"+randHex(6), ""), 404, "unknown path")
	t.wantError(t.do("DELETE", readPath("/read", t.qname(), "", 0), ""), 405, "DELETE /read")

	q := t.qname()
	t.writeMsg(q, "one", "t1")
	t.wantError(t.write("api_key", key, "qname", q, "msg", "two", "tick", "t1"), 409, "same tick, different msg")
	t.wantError(t.write("api_key", key, "qname", q, "msg", big, "tick", "t1"), 413, "same tick, 4097-byte msg (413 before 409)")
}

func checkParameters(t *caseT) {
	key := t.cfg.Account.Key
	enc := func(s string) string { return form("x", s)[2:] }
	q := t.qname()
	base := "api_key=" + enc(key) + "&qname=" + enc(q)

	bad := []struct {
		method, target, body, what string
	}{
		{"GET", "/write?" + base + "&msg=a&msg=b", "", "msg twice in the query"},
		{"GET", "/write?" + base + "&api_key=" + enc(key) + "&msg=a", "", "identical api_key twice in the query"},
		{"POST", "/write", base + "&msg=a&msg=b", "msg twice in the body"},
		{"POST", "/write", base + "&msg=%zz", "bad percent-encoding %zz"},
		{"POST", "/write", base + "&msg=ab%4", "truncated percent-encoding"},
		{"POST", "/write", base + "&msg=%ff%fe", "invalid UTF-8"},
		{"POST", "/write", base + "&msg=%c0%af", "overlong UTF-8"},
		{"POST", "/write", base + "&msg=a%00b", "NUL in a value"},
		{"GET", "/write?" + base + "&msg=a%00b", "", "NUL in a query value"},
	}
	for _, b := range bad {
		t.wantError(t.do(b.method, b.target, b.body), 400, b.what)
	}

	type wrote struct{ tick, msg string }
	var want []wrote
	ok := func(method, target, body, tick, msg, what string) {
		m := t.wantOK(t.do(method, target, body), what)
		if m["tick"] != tick {
			t.Fatalf("%s: answered tick %v, want %q", what, m["tick"], tick)
		}
		want = append(want, wrote{tick, msg})
	}
	ok("POST", "/write?msg=fromquery&tick=q1", base+"&msg=frombody", "q1", "frombody", "msg once in the query and once in the body")
	ok("POST", "/write?"+base+"&msg=only+query&tick=q2", "", "q2", "only query", "POST with every parameter in the query")
	ok("POST", "/write", base+"&msg=a+b%2Bc&tick=q3", "q3", "a b+c", "+ and %2B in the body")
	ok("GET", "/write?"+base+"&msg=x+y&tick=q4", "", "q4", "x y", "+ in the query")
	ok("POST", "/write", base+"&msg="+enc("é😀\t<>&=")+"&tick=q5", "q5", "é😀\t<>&=", "multi-byte UTF-8 and reserved characters")
	got, _ := t.readAll(q, "")
	var msgs, ticks []string
	for _, w := range want {
		msgs, ticks = append(msgs, w.msg), append(ticks, w.tick)
	}
	if err := sameItems(got, msgs, ticks); err != nil {
		t.Fatalf("reading back decoded values: %v", err)
	}
}

func checkCORSAndJSONP(t *caseT) {
	q := t.qname()
	t.writeMsg(q, "hello", "c1")
	cors := func(r *reply, what string) {
		if v := r.header.Get("Access-Control-Allow-Origin"); v != "*" {
			t.Fatalf("%s: Access-Control-Allow-Origin %q, want *", what, v)
		}
		if v := r.header.Get("Cache-Control"); !strings.Contains(v, "no-store") {
			t.Fatalf("%s: Cache-Control %q, want no-store", what, v)
		}
	}
	r := t.do("GET", readPath("/read", q, "", 0), "", "Origin: https://example.com")
	t.wantOK(r, "read")
	cors(r, "GET /read")
	r = t.do("GET", "/read?"+form("qname", q, "timeout", "abc"), "")
	t.wantError(r, 400, "read with timeout=abc")
	cors(r, "400 answer of /read")
	r = t.do("GET", readPath("/read", "zz"+randHex(10)+"-c", "", 0), "")
	t.wantError(r, 404, "read of an unknown user")
	cors(r, "404 answer of /read")
	s := t.mustSSE(readPath("/read/sse", q, "", -1))
	cors(s.resp, "GET /read/sse")
	s.close()

	for _, path := range []string{"/read", "/read/sse"} {
		r = t.do("OPTIONS", path+"?"+form("qname", q), "", "Origin: https://example.com", "Access-Control-Request-Method: GET")
		if r.status != 200 && r.status != 204 {
			t.Fatalf("OPTIONS %s preflight: want 200 or 204, got %s", path, r)
		}
		if v := r.header.Get("Access-Control-Allow-Origin"); v != "*" {
			t.Fatalf("OPTIONS %s preflight: Access-Control-Allow-Origin %q, want *", path, v)
		}
		if v := r.header.Get("Access-Control-Allow-Methods"); v != "" && !strings.Contains(strings.ToUpper(v), "GET") {
			t.Fatalf("OPTIONS %s preflight: Access-Control-Allow-Methods %q lacks GET", path, v)
		}
	}

	jsonp := func(cb string, kv []string, status int, what string) {
		r := t.do("GET", "/read?"+form(append(kv, "callback", cb)...), "")
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/javascript") {
			t.Fatalf("%s: Content-Type %q, want application/javascript", what, ct)
		}
		if r.status != status {
			t.Fatalf("%s: want HTTP %d, got %s", what, status, r)
		}
		cors(r, what)
		body := strings.TrimSpace(string(r.body))
		if !strings.HasPrefix(body, cb+"(") || !strings.HasSuffix(body, ");") {
			t.Fatalf("%s: want %s(<json>);, got %q", what, cb, clip(r.body))
		}
		inner := &reply{status: r.status, header: r.header, body: []byte(body[len(cb)+1 : len(body)-2])}
		m := t.obj(inner, what)
		if status == 200 && m["code"] != "ok" {
			t.Fatalf(`%s: want "code":"ok" inside, got %q`, what, clip(r.body))
		}
		if status != 200 && (m["code"] != "error" || fmt.Sprint(m["status"]) != fmt.Sprint(status)) {
			t.Fatalf(`%s: want "code":"error","status":%d inside, got %q`, what, status, clip(r.body))
		}
	}
	jsonp("cb", []string{"qname", q, "timeout", "0"}, 200, "JSONP read")
	jsonp("$jq_1.x", []string{"qname", q, "timeout", "0"}, 200, "JSONP with $ _ . in the name")
	jsonp("a"+strings.Repeat("b", 63), []string{"qname", q, "timeout", "0"}, 200, "JSONP with a 64-char name")
	jsonp("cb", []string{"qname", q, "timeout", "abc"}, 400, "JSONP error answer")
	// Answers made after a wait go through other paths: the same rules.
	e := t.qname()
	jsonp("held", []string{"qname", e, "timeout", "1"}, 200, "JSONP long-poll that timed out")
	t.parallel(func() {
		jsonp("live", []string{"qname", e, "timeout", "10"}, 200, "JSONP long-poll answered by a write")
	}, func() {
		t.sleep(500 * time.Millisecond)
		t.writeMsg(e, "late", "l1")
	})
	for _, cb := range []string{"1cb", "a-b", "cb()", "alert(1)//", "", "a" + strings.Repeat("b", 64)} {
		t.wantError(t.do("GET", "/read?"+form("qname", q, "timeout", "0", "callback", cb), ""), 400, fmt.Sprintf("callback=%q", cb))
	}
}

func checkDurableRead(t *caseT) {
	q := t.qname()
	tick := t.writeMsg(q, "durable", "")
	a := t.poll(q, "", 0)
	if err := sameItems(a.messages, []string{"durable"}, []string{tick}); err != nil {
		t.Fatalf("read after an ok write: %v", err)
	}
}

func checkHealthMetrics(t *caseT) {
	r := t.do("GET", "/healthz", "")
	m := t.wantOK(r, "GET /healthz")
	if len(m) != 1 {
		t.Fatalf(`GET /healthz: want exactly {"code":"ok"}, got %s`, r)
	}
	// Halley checks it with a test-only build whose WAL stalls or fails
	// on demand (cmd/halley/storagefault_test.go).
	t.Notef("/healthz 503 while the store cannot accept writes: a storage fault cannot be injected from outside the server")
	r = t.do("GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("GET /metrics: want 200, got %s", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") && !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("GET /metrics: Content-Type %q, want Prometheus text", ct)
	}
	var types, samples int
	for _, line := range strings.Split(string(r.body), "\n") {
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			if len(strings.Fields(line)) != 4 {
				t.Fatalf("GET /metrics: malformed %q", line)
			}
			types++
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			if len(strings.Fields(line)) < 2 {
				t.Fatalf("GET /metrics: malformed sample %q", line)
			}
			samples++
		}
	}
	if types == 0 || samples == 0 {
		t.Fatalf("GET /metrics: want # TYPE lines and samples, got %d and %d", types, samples)
	}
}
