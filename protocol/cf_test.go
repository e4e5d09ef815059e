package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clock is a settable time shared by the store and the API.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type cfFixture struct {
	*fixture
	clk *clock
}

func newCFFixture(t *testing.T, ao Options) *cfFixture {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	ao.Now = clk.now
	f := newFixture(t, persist.Options{Now: clk.now, SweepInterval: -1}, ao)
	return &cfFixture{fixture: f, clk: clk}
}

// push signs and sends one push and returns its answer.
func (f *cfFixture) push(ident, text string, secret bool, extra string) reply {
	f.t.Helper()
	sec := "0"
	if secret {
		sec = "1"
	}
	sig := md5hex(f.acct.CFAPIKey + md5hex(f.acct.APISecret) + ident + text)
	body := "identifier=" + url.QueryEscape(ident) + "&secret=" + sec + "&text=" + url.QueryEscape(text) + "&secure=" + sig + extra
	c := f.serve("POST", "/"+f.acct.CFAPIKey+"/push/"+ident, "", body, header{"Content-Type": "application/x-www-form-urlencoded"})
	f.await("push answer", func() bool { return c.numReplies() > 0 })
	return c.lastReply(f.t)
}

// listen opens a listener (kind "listen", "poll" or "sse") from peer.
func (f *cfFixture) listen(kind, query, peer string, h header) *fakeConn {
	c := newFakeConn()
	if h == nil {
		h = header{}
	}
	r := &engine.Request{
		Method: []byte("GET"), Path: []byte("/" + f.acct.CFAPIKey + "/" + kind), Query: []byte(query),
		Header: h, PeerAddr: netip.MustParseAddr(peer), ClientIP: netip.MustParseAddr(peer),
	}
	f.loop.do(func() { f.api.Serve(c, r) })
	f.settle()
	return c
}

func (f *cfFixture) secureKey(names string) string {
	return md5hex(f.acct.CFAPIKey + f.acct.APISecret + md5hex(names))
}

func TestCFSignatureVectors(t *testing.T) {
	// CF-P-03 and CF-L-06's seed vectors.
	sig := pushSignature(nil, "1", "c1h89chHaka9s1", []byte("visitors"), []byte("284 people"))
	if !matchMD5Hex([]byte("149f26540f697a97e886e2527466c6e8"), sig) || !matchMD5Hex([]byte("149F26540F697A97E886E2527466C6E8"), sig) {
		t.Fatal("push vector does not match")
	}
	if matchMD5Hex([]byte("149f26540f697a97e886e2527466c6e9"), sig) || matchMD5Hex([]byte("149f"), sig) {
		t.Fatal("wrong signature matched")
	}
	items, e := parseList(nil, []byte("metrics,tweets"), 100)
	if e != nil {
		t.Fatal(e)
	}
	if !matchMD5Hex([]byte("d6d02dbf813a87619a1ab325878942b0"), secureKeySignature(nil, "1", "c1h89chHaka9s1", items)) {
		t.Fatal("secureKey vector 1")
	}
	items, _ = parseList(nil, []byte("guestbook:5,comments:0,oneliner:7"), 100)
	if !matchMD5Hex([]byte("5b70b14ea396f689a1b9550ba66025bc"), secureKeySignature(nil, "37282591", "dj28DNam!!nx72*", items)) {
		t.Fatal("secureKey vector 2 (id form signs the names only)")
	}
}

func TestParseList(t *testing.T) {
	long := strings.Repeat("a", 61)
	for _, tc := range []struct {
		list string
		ok   bool
	}{
		{"a", true}, {"a,b", true}, {"a:0,b:9223372036854775807", true},
		{"", false}, {",", false}, {"a,", false}, {",a", false}, {"a,,b", false},
		{"a,b:1", false}, {"a:1,b", false}, {"1a", false}, {"_a", false}, {"a-b", false},
		{"a:", false}, {"a:x", false}, {"a:-1", false}, {"a:9223372036854775808", false},
		{"a,A", false}, {long, false}, {strings.Repeat("a", 60), true},
		{"a,b,c,d", false}, // over the max of 3
	} {
		_, e := parseList(nil, []byte(tc.list), 3)
		if (e == nil) != tc.ok {
			t.Errorf("parseList(%q): err %v, want ok=%v", tc.list, e, tc.ok)
		}
	}
}

func TestCFPushValidation(t *testing.T) {
	f := newCFFixture(t, Options{})
	key := f.acct.CFAPIKey
	good := func(ident, text string) string {
		return "identifier=" + ident + "&secret=0&text=" + url.QueryEscape(text) + "&secure=" + md5hex(key+md5hex(f.acct.APISecret)+ident+text)
	}
	big := strings.Repeat("x", 65537)
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"ok", "POST", "/" + key + "/push/chat", good("chat", "hi"), 200},
		{"case folded path", "POST", "/" + key + "/push/CHAT", good("chat", "hi"), 200},
		{"GET", "GET", "/" + key + "/push/chat", good("chat", "hi"), 405},
		{"unknown key", "POST", "/0000/push/chat", good("chat", "hi"), 401},
		{"405 before 401", "PUT", "/0000/push/chat", "", 405},
		{"bad path identifier", "POST", "/" + key + "/push/1chat", good("1chat", "hi"), 400},
		{"identifier mismatch", "POST", "/" + key + "/push/chat", good("other", "hi"), 400},
		{"no secret", "POST", "/" + key + "/push/chat", strings.Replace(good("chat", "hi"), "secret=0", "", 1), 400},
		{"secret 2", "POST", "/" + key + "/push/chat", strings.Replace(good("chat", "hi"), "secret=0", "secret=2", 1), 400},
		{"bad push_id", "POST", "/" + key + "/push/chat", good("chat", "hi") + "&push_id=-1", 400},
		{"text 65537", "POST", "/" + key + "/push/chat", good("chat", big), 413},
		{"413 before 403", "POST", "/" + key + "/push/chat", "identifier=chat&secret=0&secure=00&text=" + big, 413},
		{"bad secure", "POST", "/" + key + "/push/chat", "identifier=chat&secret=0&text=hi&secure=" + md5hex("x"), 403},
		{"push_id 0", "POST", "/" + key + "/push/chat", good("chat", "hi") + "&push_id=0", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.serve(tc.method, tc.path, "", tc.body, header{"Content-Type": "application/x-www-form-urlencoded"})
			f.await("answer", func() bool { return c.numReplies() > 0 })
			r := c.lastReply(t)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if v := decode(t, r.body); tc.status != 200 && v["status"] != float64(tc.status) {
				t.Fatalf("error body %s", r.body)
			}
		})
	}
}

func TestCFPushIDs(t *testing.T) {
	f := newCFFixture(t, Options{})
	want := func(r reply, status int, id float64) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		if status == 200 && decode(t, r.body)["push_id"] != id {
			t.Fatalf("push_id in %s, want %v", r.body, id)
		}
	}
	want(f.push("chat", "a", false, ""), 200, 1)
	want(f.push("Chat", "b", false, ""), 200, 2)
	want(f.push("chat", "c", false, "&push_id=10"), 200, 10)
	want(f.push("chat", "c", false, "&push_id=10"), 200, 10) // CF-P-06 idempotent
	want(f.push("chat", "other", false, "&push_id=10"), 409, 0)
	want(f.push("chat", "d", false, "&push_id=5"), 409, 0) // not above the highest
	want(f.push("chat", "e", false, ""), 200, 11)
	want(f.push("news", "f", false, ""), 200, 1) // ids are per identifier
}

// frames decodes what a WebSocket fakeConn was sent: one JSON text per frame.
func frames(t *testing.T, c *fakeConn) []string {
	t.Helper()
	var out []string
	for _, s := range c.sentCopy() {
		b := []byte(s)
		for len(b) > 0 {
			n := int(b[1] & 0x7f)
			h := 2
			switch n {
			case 126:
				n, h = int(b[2])<<8|int(b[3]), 4
			case 127:
				t.Fatal("frame too large for the test decoder")
			}
			out = append(out, string(b[h:h+n]))
			b = b[h+n:]
		}
	}
	return out
}

func TestCFListenWebSocket(t *testing.T) {
	f := newCFFixture(t, Options{})
	f.push("chat", "before", false, "")
	plain := f.listen("listen", "identifiers=Chat,news", "10.0.0.1", nil)
	secure := f.listen("listen", "identifiers=Chat,news&secureKey="+f.secureKey("Chat,news"), "10.0.0.1", nil)
	if !plain.upgraded || !secure.upgraded {
		t.Fatal("not upgraded")
	}
	f.push("CHAT", "open", false, "")
	f.push("chat", "hidden", true, "")
	f.push("news", "n1", false, "")
	f.loop.sync()
	wantPlain := []string{
		`{"since":"chat:1,news:0"}`,
		`{"identifier":"chat","id":2,"data":"open"}`,
		`{"identifier":"news","id":1,"data":"n1"}`,
	}
	if got := frames(t, plain); strings.Join(got, "\n") != strings.Join(wantPlain, "\n") {
		t.Fatalf("plain listener got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantPlain, "\n"))
	}
	wantSecure := []string{wantPlain[0], wantPlain[1], `{"identifier":"chat","id":3,"data":"hidden"}`, wantPlain[2]}
	if got := frames(t, secure); strings.Join(got, "\n") != strings.Join(wantSecure, "\n") {
		t.Fatalf("secure listener got\n%s", strings.Join(got, "\n"))
	}
	bad := f.listen("listen", "identifiers=chat&secureKey="+md5hex("nope"), "10.0.0.1", nil)
	if r := bad.lastReply(t); r.status != 403 || bad.upgraded {
		t.Fatalf("wrong secureKey: %d %s", r.status, r.body)
	}
}

func TestCFReplayWindowsAndGap(t *testing.T) {
	f := newCFFixture(t, Options{CFReplayWindow: 10 * time.Minute, CFResumeWindow: 3 * time.Minute})
	f.push("chat", "old", false, "") // id 1, will be 5 min old
	f.clk.add(5 * time.Minute)
	f.push("chat", "mid", false, "") // id 2, now
	f.push("chat", "new", false, "") // id 3

	// Id 0: the whole replay window, no gap.
	c := f.listen("listen", "identifiers=chat:0", "10.0.0.2", nil)
	want := `{"since":"chat:0"}|{"identifier":"chat","id":1,"data":"old"}|{"identifier":"chat","id":2,"data":"mid"}|{"identifier":"chat","id":3,"data":"new"}`
	if got := strings.Join(frames(t, c), "|"); got != want {
		t.Fatalf("id 0 replay:\n%s\nwant\n%s", got, want)
	}
	// Id 2: only above it, no gap.
	c = f.listen("listen", "identifiers=chat:2", "10.0.0.2", nil)
	if got := strings.Join(frames(t, c), "|"); got != `{"since":"chat:2"}|{"identifier":"chat","id":3,"data":"new"}` {
		t.Fatalf("id 2 resume: %s", got)
	}
	p0 := f.listen("poll", "identifiers=chat:0", "10.0.0.2", nil)
	if strings.Contains(p0.lastReply(t).body, "gap") {
		t.Fatalf("id 0 poll must not report a gap: %s", p0.lastReply(t).body)
	}
	f.push("other", "o1", false, "") // id 1 at t+5m
	f.clk.add(4 * time.Minute)
	f.push("other", "o2", false, "") // id 2 at t+9m
	// Resuming "other" after id 1 (now 4 min old) misses nothing.
	p := f.listen("poll", "identifiers=other:1", "10.0.0.2", nil)
	if body := p.lastReply(t).body; strings.Contains(body, "gap") || !strings.Contains(body, `"id":2`) {
		t.Fatalf("resume from 1: %s", body)
	}
	// chat: ids 2, 3 are 4 min old now, outside the 3-min resume window.
	p = f.listen("poll", "identifiers=chat:1&timeout=0", "10.0.0.2", nil)
	body := p.lastReply(t).body
	if want := `{"code":"ok","gap":true,"gap_identifiers":["chat"],"pushes":[],"since":"chat:3"}`; body != want {
		t.Fatalf("gap poll:\n%s\nwant\n%s", body, want)
	}
	s := f.listen("sse", "identifiers=chat:1", "10.0.0.2", nil)
	if got := strings.Join(s.sentCopy(), ""); got != "id: chat:1\n\nevent: gap\ndata: {\"gap\":true,\"identifier\":\"chat\"}\n\n" {
		t.Fatalf("gap sse: %q", got)
	}
}

func TestCFPollAndSince(t *testing.T) {
	f := newCFFixture(t, Options{})
	p := f.listen("poll", "identifiers=chat,news", "10.0.0.3", nil)
	if p.held == 0 || p.numReplies() != 0 {
		t.Fatal("a plain poll with nothing new must wait")
	}
	f.push("news", "n", false, "")
	f.await("poll answer", func() bool { return p.numReplies() == 1 })
	want := `{"code":"ok","pushes":[{"identifier":"news","id":1,"data":"n"}],"since":"chat:0,news:1"}`
	if got := p.lastReply(t).body; got != want {
		t.Fatalf("poll:\n%s\nwant\n%s", got, want)
	}
	// Passing since back loses nothing and repeats nothing.
	f.push("chat", "c1", false, "")
	p = f.listen("poll", "identifiers=chat:0,news:1", "10.0.0.3", nil)
	if got := p.lastReply(t).body; got != `{"code":"ok","pushes":[{"identifier":"chat","id":1,"data":"c1"}],"since":"chat:1,news:1"}` {
		t.Fatalf("resumed poll: %s", got)
	}
	// A waiting poll answers its timeout with the same since.
	p = f.listen("poll", "identifiers=chat:1,news:1&callback=cb", "10.0.0.3", nil)
	f.loop.do(func() { f.api.Expired(p) })
	if got := p.lastReply(t); got.body != `cb({"code":"ok","pushes":[],"since":"chat:1,news:1"});` || got.ctype != ctJS {
		t.Fatalf("expired poll: %+v", got)
	}
}

func TestCFLastEventID(t *testing.T) {
	f := newCFFixture(t, Options{})
	f.push("chat", "a", false, "")
	f.push("chat", "b", false, "")
	s := f.listen("sse", "identifiers=chat", "10.0.0.4", header{"Last-Event-ID": "chat:1"})
	want := "id: chat:1\n\nid: chat:2\ndata: {\"identifier\":\"chat\",\"id\":2,\"data\":\"b\"}\n\n"
	if got := strings.Join(s.sentCopy(), ""); got != want {
		t.Fatalf("sse resume:\n%q\nwant\n%q", got, want)
	}
	// An identifier the header does not name keeps the query's form: plain
	// news starts at its highest id, not at a replay from 0.
	f.push("news", "n1", false, "")
	s = f.listen("sse", "identifiers=chat,news", "10.0.0.4", header{"Last-Event-ID": "chat:2,other:9"})
	if got := strings.Join(s.sentCopy(), ""); got != "id: chat:2,news:1\n\n" {
		t.Fatalf("partial Last-Event-ID: %q", got)
	}
	// A header that does not parse is ignored.
	s = f.listen("sse", "identifiers=chat:1", "10.0.0.4", header{"Last-Event-ID": "garbage!"})
	if got := strings.Join(s.sentCopy(), ""); !strings.HasPrefix(got, "id: chat:1\n\nid: chat:2\n") {
		t.Fatalf("bad Last-Event-ID: %q", got)
	}
}

func TestCFPerIPCap(t *testing.T) {
	f := newCFFixture(t, Options{})
	var conns []*fakeConn
	kinds := []string{"listen", "sse", "poll"}
	for i := range 30 {
		c := f.listen(kinds[i%3], "identifiers=chat", "10.1.0.1", nil)
		if c.numReplies() > 0 {
			t.Fatalf("listener %d refused: %s", i, c.lastReply(t).body)
		}
		conns = append(conns, c)
	}
	for _, k := range kinds {
		c := f.listen(k, "identifiers=chat", "10.1.0.1", nil)
		if r := c.lastReply(t); r.status != 429 || c.upgraded || c.streaming {
			t.Fatalf("31st %s: %d %s upgraded=%v", k, r.status, r.body, c.upgraded)
		}
	}
	// Another IP, and another account's view of the same IP, are apart.
	if c := f.listen("listen", "identifiers=chat", "10.1.0.2", nil); !c.upgraded {
		t.Fatal("another IP refused")
	}
	// A poll answered at once needs no slot.
	f.push("chat", "x", false, "")
	f.await("polls answered", func() bool { return conns[2].numReplies() == 1 })
	if c := f.listen("poll", "identifiers=chat:0", "10.1.0.1", nil); c.lastReply(t).status != 200 {
		t.Fatal("an immediate poll was refused")
	}
	// Answered polls freed their slots; closing the rest frees all.
	f.loop.do(func() {
		for _, c := range conns {
			f.api.Closed(c)
		}
	})
	var held int
	f.loop.do(func() { held = f.api.cap.held() })
	if held != 1 { // the 10.1.0.2 listener
		t.Fatalf("%d slots held after close, want 1", held)
	}
	// IPv6: one /64 is one client.
	for i := range 30 {
		f.listen("listen", "identifiers=chat", fmt.Sprintf("2001:db8::%x", i+1), nil)
	}
	if c := f.listen("listen", "identifiers=chat", "2001:db8::ffff:1", nil); c.lastReply(t).status != 429 {
		t.Fatal("the /64 was not capped")
	}
	if c := f.listen("listen", "identifiers=chat", "2001:db8:0:1::1", nil); !c.upgraded {
		t.Fatal("another /64 refused")
	}
}

// TestCFSlotFreedWhenPeerGoesDuringUpgrade: a conn that dies while its 101
// or stream head is written never gets a Closed, so the slot must be freed
// right there.
func TestCFSlotFreedWhenPeerGoesDuringUpgrade(t *testing.T) {
	f := newCFFixture(t, Options{})
	for _, kind := range []string{"listen", "sse"} {
		c := newFakeConn()
		c.dieOnOpen = true
		r := &engine.Request{Method: []byte("GET"), Path: []byte("/" + f.acct.CFAPIKey + "/" + kind),
			Query: []byte("identifiers=chat"), Header: header{}, PeerAddr: netip.MustParseAddr("10.9.0.1"), ClientIP: netip.MustParseAddr("10.9.0.1")}
		f.loop.do(func() { f.api.Serve(c, r) })
		f.settle()
	}
	var held int
	f.loop.do(func() { held = f.api.cap.held() })
	if held != 0 {
		t.Fatalf("%d slots held by listeners whose peer went during the upgrade", held)
	}
}

func TestCFStats(t *testing.T) {
	f := newCFFixture(t, Options{})
	f.listen("listen", "identifiers=chat,news", "10.2.0.1", nil)
	f.listen("sse", "identifiers=chat", "10.2.0.1", nil)
	f.listen("poll", "identifiers=chat", "10.2.0.2", nil)
	f.write("qname=john-room&msg=hi")
	get := func(auth string) reply {
		c := f.serve("GET", "/"+f.acct.CFAPIKey+"/stats", "", "", header{"Authorization": auth})
		f.await("stats", func() bool { return c.numReplies() > 0 })
		return c.lastReply(t)
	}
	r := get("Bearer " + f.acct.APISecret)
	want := `{"code":"ok","listeners":{"chat":3,"news":1},"listeners_total":4,"channels":{"john-room":1},"client_ips":[{"ip":"10.2.0.1","listeners":2},{"ip":"10.2.0.2","listeners":1}]}`
	if r.status != 200 || r.body != want {
		t.Fatalf("stats:\n%s\nwant\n%s", r.body, want)
	}
	if r := get("Bearer wrong"); r.status != 403 {
		t.Fatalf("wrong secret: %d", r.status)
	}
	if r := get(""); r.status != 401 {
		t.Fatalf("no auth: %d", r.status)
	}
}

func TestCFDrain(t *testing.T) {
	f := newCFFixture(t, Options{})
	ws := f.listen("listen", "identifiers=chat", "10.3.0.1", nil)
	p := f.listen("poll", "identifiers=chat", "10.3.0.1", nil)
	f.loop.do(func() { f.api.Drain(ws); f.api.Drain(p) })
	if ws.closeCode != 1001 || ws.closeWhy != "restart" {
		t.Fatalf("ws drain: %d %q", ws.closeCode, ws.closeWhy)
	}
	if b := p.lastReply(t).body; !strings.Contains(b, `"retry_ms":`) || !strings.Contains(b, `"since":"chat:0"`) {
		t.Fatalf("poll drain: %s", b)
	}
	var held int
	f.loop.do(func() { held = f.api.cap.held() })
	if held != 0 {
		t.Fatalf("%d slots held after drain", held)
	}
}

// FuzzParseList: parseList never panics, and what it accepts is exactly a
// LIST: rejoining the items gives the input back, every name is valid and
// unique, the forms are not mixed and the count is within the max.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"a", "a,b", "a:0,b:12", "a,A", "a:,b", "a,,b", "x:9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		items, e := parseList(nil, []byte(list), 5)
		if e != nil {
			return
		}
		var parts []string
		seen := map[string]bool{}
		for _, it := range items {
			if !validIdentifier(it.name) || it.hasID != items[0].hasID {
				t.Fatalf("accepted %q", list)
			}
			low := strings.ToLower(string(it.name))
			if seen[low] {
				t.Fatalf("duplicate accepted in %q", list)
			}
			seen[low] = true
			p := string(it.name)
			if it.hasID {
				p += fmt.Sprintf(":%d", it.id)
			}
			parts = append(parts, p)
		}
		if len(items) > 5 || strings.Join(parts, ",") != list && !strings.Contains(list, ":0") {
			t.Fatalf("%q parsed as %q", list, strings.Join(parts, ","))
		}
	})
}
