package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests check the runner's plumbing only; the suite itself is run
// against the real server by `make test`.

func baseArgs(target string) []string {
	return []string{"--target", target, "--user", "demo", "--key", strings.Repeat("a", 32), "--cf-key", strings.Repeat("c", 32), "--secret", strings.Repeat("s", 24)}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--target", "http://127.0.0.1:1"},
		{"--target", "http://127.0.0.1:1", "--user", "demo", "--key", strings.Repeat("a", 32), "--secret", strings.Repeat("s", 24)}, // no --cf-key
		append(baseArgs("http://127.0.0.1:1"), "--user2", "two", "--key2", strings.Repeat("b", 32)),                                 // no --cf-key2
		append(baseArgs("http://127.0.0.1:1"), "--demo-push-path", "demo/push"),
		append(baseArgs("ftp://x"), "--rules", "C-"),
		append(baseArgs("http://127.0.0.1:1"), "--no-such-flag"),
		append(baseArgs("http://127.0.0.1:1"), "stray"),
		append(baseArgs("http://127.0.0.1:1"), "--timeout-scale", "-1"),
	} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("Main(%q) = %d, want 2 (stderr %q)", args, code, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("Main(%q) printed to stdout: %q", args, out.String())
		}
	}
}

// brokenServer answers every request with an HTML 500, which no rule
// accepts.
func brokenServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(500)
		_, _ = w.Write([]byte("<h1>oops</h1>"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestMainFailingTarget(t *testing.T) {
	srv := brokenServer(t)
	var out, errb bytes.Buffer
	code := Main(append(baseArgs(srv.URL), "--rules", "C-10,A-02"), &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %q", lines)
	}
	if !strings.HasPrefix(lines[0], "FAIL C-10 GET /healthz and GET /metrics: ") || !strings.Contains(lines[0], "500") {
		t.Errorf("line 1: %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "SKIP A-02 ") || !strings.Contains(lines[1], ": pass --account-cmd") {
		t.Errorf("line 2: %q", lines[1])
	}
	if lines[2] != "0 passed, 1 failed, 1 skipped" {
		t.Errorf("closing line %q", lines[2])
	}
}

func TestMainJSON(t *testing.T) {
	srv := brokenServer(t)
	var out, errb bytes.Buffer
	if code := Main(append(baseArgs(srv.URL), "--rules", "A-02", "--json"), &out, &errb); code != 0 {
		t.Fatalf("exit %d, want 0 (only a skip); stderr %q", code, errb.String())
	}
	dec := json.NewDecoder(&out)
	var r Result
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Rule != "A-02" || r.Status != "SKIP" || r.Detail == "" || r.What == "" {
		t.Errorf("case object %+v", r)
	}
	var s map[string]int
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s["passed"] != 0 || s["failed"] != 0 || s["skipped"] != 1 {
		t.Errorf("summary object %v", s)
	}
}

func TestMainList(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"--list", "--rules", "EZ-W-0,X-"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 12 || !strings.HasPrefix(lines[0], "EZ-W-01 ") || !strings.HasPrefix(lines[9], "X-01 ") || !strings.HasPrefix(lines[11], "X-04 ") {
		t.Errorf("list: %q", lines)
	}
}

func TestNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out, errb bytes.Buffer
	if code := Main(append(baseArgs("http://"+addr), "--rules", "C-01"), &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1: %q", code, out.String())
	}
	if !strings.HasPrefix(out.String(), "FAIL C-01 ") || !strings.Contains(out.String(), "connect") {
		t.Errorf("output %q", out.String())
	}
}

// TestRunnerOrderAndOutcomes uses synthetic cases: results print in list
// order even when later cases finish first, notes follow the description,
// panics and timeouts fail their case only, last cases run after the rest.
func TestRunnerOrderAndOutcomes(t *testing.T) {
	// A listener that accepts and never answers: a case blocked on it must
	// be cut off by its timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	order := make(chan string, 11)
	cases := []ruleCase{
		{rule: "T-01", what: "slow pass", run: func(t *caseT) { time.Sleep(200 * time.Millisecond); order <- "T-01" }},
		{rule: "T-02", what: "fail", run: func(t *caseT) { order <- "T-02"; t.Fatalf("bad %d", 7); order <- "unreachable" }},
		{rule: "T-03", what: "skip", run: func(t *caseT) { order <- "T-03"; t.Skipf("no way") }},
		{rule: "T-04", what: "note", run: func(t *caseT) { order <- "T-04"; t.Notef("part a"); t.Notef("part b") }},
		{rule: "T-05", what: "panic", run: func(t *caseT) { order <- "T-05"; panic("boom") }},
		{rule: "T-06", what: "hang", timeout: 300 * time.Millisecond, run: func(t *caseT) {
			order <- "T-06"
			w := t.dial()
			_, _ = w.readErr("GET", time.Minute)
			time.Sleep(time.Second)
		}},
		{rule: "T-07", what: "last", last: true, run: func(t *caseT) { order <- "T-07" }},
		{rule: "T-08", what: "parallel failure", run: func(t *caseT) {
			order <- "T-08"
			t.parallel(func() {}, func() { t.Fatalf("inner") })
			order <- "unreachable"
		}},
		{rule: "T-09", what: "view on another address", run: func(t *caseT) {
			order <- "T-09"
			t.at("http://127.0.0.1:1").dial()
			order <- "unreachable"
		}},
		{rule: "T-10", what: "alone", alone: true, run: func(t *caseT) { order <- "T-10" }},
		{rule: "U-01", what: "filtered out", run: func(t *caseT) { order <- "U-01" }},
	}
	cfg := Config{Target: "http://" + ln.Addr().String(), Rules: []string{"T-"}}
	cfg.EnsureDefaults()
	var out bytes.Buffer
	sum := run(cfg, cases, textReporter(&out))
	close(order)
	var ran []string
	for r := range order {
		ran = append(ran, r)
	}
	if len(ran) != 10 || ran[0] != "T-10" || ran[len(ran)-1] != "T-07" {
		t.Errorf("ran %v: want the 10 T cases, T-10 first, T-07 last, nothing unreachable", ran)
	}
	want := []string{
		"PASS T-01 slow pass",
		"FAIL T-02 fail: bad 7",
		"SKIP T-03 skip: no way",
		"PASS T-04 note (not checked: part a; part b)",
		"FAIL T-05 panic: panic: boom",
		"FAIL T-06 hang: case did not finish within 300ms",
		"PASS T-07 last",
		"FAIL T-08 parallel failure: inner",
		"FAIL T-09 view on another address: connect 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused",
		"PASS T-10 alone",
		"4 passed, 5 failed, 1 skipped",
	}
	// Cases dial from source addresses of their own (runCase).
	norm := regexp.MustCompile(`dial tcp 127\.[0-9.]+:0->`).ReplaceAllString(out.String(), "dial tcp ")
	if got := strings.Split(strings.TrimRight(norm, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
	if sum.Passed != 4 || sum.Failed != 5 || sum.Skipped != 1 || len(sum.Results) != 10 {
		t.Errorf("summary %+v", sum)
	}
}

func TestSpecOrder(t *testing.T) {
	seen := map[string]bool{}
	var ids []string
	for _, c := range allCases() {
		// A rule may have several cases, one after the other.
		if len(ids) > 0 && ids[len(ids)-1] == c.rule {
			continue
		}
		if seen[c.rule] {
			t.Errorf("rule %s has cases apart", c.rule)
		}
		seen[c.rule] = true
		ids = append(ids, c.rule)
	}
	want := "C-01 C-02 C-03 C-04 C-05 C-06 C-07 C-08 C-09 C-10 C-11 C-12 C-13 C-14 A-01 A-02 A-03 A-04 " +
		"EZ-W-01 EZ-W-02 EZ-W-03 EZ-W-04 EZ-W-05 EZ-W-06 EZ-W-07 EZ-W-08 EZ-W-09 " +
		"EZ-R-01 EZ-R-02 EZ-R-03 EZ-R-04 EZ-R-05 EZ-R-06 EZ-R-07 EZ-R-08 EZ-R-09 EZ-R-10 " +
		"CF-P-01 CF-P-02 CF-P-03 CF-P-04 CF-P-05 CF-P-06 CF-P-07 CF-P-08 CF-P-09 CF-P-10 " +
		"CF-L-01 CF-L-02 CF-L-03 CF-L-04 CF-L-05 CF-L-06 CF-L-07 CF-L-08 CF-L-09 X-01 X-03 X-04"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("cases in order:\n%s\nwant:\n%s", got, want)
	}
}

func TestForm(t *testing.T) {
	if got := form("msg", "a b+c", "msg", "é", "x", ""); got != "msg=a+b%2Bc&msg=%C3%A9&x=" {
		t.Errorf("form = %q", got)
	}
	if got := readPath("/read", "u-c", tickEmpty, 0); got != "/read?qname=u-c&tick=&timeout=0" {
		t.Errorf("readPath = %q", got)
	}
}

func TestReadSSELine(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("a\r\nb\nc\rd\r\r\n"))
	var got []string
	for {
		l, err := readSSELine(br)
		if err != nil {
			break
		}
		got = append(got, l)
	}
	if strings.Join(got, "|") != "a|b|c|d|" {
		t.Errorf("lines %q", got)
	}
}

func TestParseProcStat(t *testing.T) {
	// Field 52 holds a wait status: 0x100 is exit 1.
	tail := strings.Repeat(" 0", 48)
	st, code, ok := parseProcStat("42 (we ird) name) Z" + tail + " 256")
	if !ok || st != "Z" || code != 1 {
		t.Errorf("parseProcStat = %q %d %v", st, code, ok)
	}
	if _, _, ok := parseProcStat("42 (x) S 1"); ok {
		t.Error("short stat parsed")
	}
}

func TestAccountShape(t *testing.T) {
	good := Account{User: "demo_1", Key: strings.Repeat("0f", 16), CFKey: strings.Repeat("1e", 16), Secret: "abcDEF012_-abcDEF012_-xy"}
	if err := accountShape(good); err != nil {
		t.Errorf("good account: %v", err)
	}
	for _, a := range []Account{
		{User: "Demo", Key: good.Key, CFKey: good.CFKey, Secret: good.Secret},
		{User: "demo", Key: strings.Repeat("0F", 16), CFKey: good.CFKey, Secret: good.Secret},
		{User: "demo", Key: good.Key, CFKey: strings.Repeat("1E", 16), Secret: good.Secret},
		{User: "demo", Key: good.Key, Secret: good.Secret},
		{User: "demo", Key: good.Key, CFKey: good.Key, Secret: good.Secret},
		{User: "demo", Key: good.Key, CFKey: good.CFKey, Secret: "short"},
		{User: "demo", Key: good.Key, CFKey: good.CFKey, Secret: strings.Repeat("!", 30)},
	} {
		if accountShape(a) == nil {
			t.Errorf("bad account %+v accepted", a)
		}
	}
}

func TestSSEText(t *testing.T) {
	for in, want := range map[string]string{"a\rb\nc\r\nd": "a\nb\nc\nd", "\r\r\n": "\n\n", "\n\r": "\n\n", "x": "x"} {
		if got := sseText(in); got != want {
			t.Errorf("sseText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPushSignature(t *testing.T) {
	// HMAC-SHA256 over the fields joined by LF, push_id empty when absent.
	got := pushSignature("k", "s", "chat", "0", "", "1700000000", "n1", "hi")
	if got != "38879de26f19f572c7cd40991d93320b0e7377ef29ac01029a24d71a91ac3ce4" {
		t.Errorf("signature %q", got)
	}
}

func TestCredentialWords(t *testing.T) {
	got := credentialWords("rotated api_key of ac1\napi_key: 0123abc (shown only now; é-x)")
	if strings.Join(got, "|") != "rotated|api_key|of|ac1|api_key|0123abc|shown|only|now|-x" {
		t.Errorf("words %q", got)
	}
}
