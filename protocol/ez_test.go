package protocol

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/halleypush/halley/persist"
)

func TestWriteValidation(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	key := "api_key=" + f.acct.APIKey
	cases := []struct {
		name, method, query, body string
		status                    int
	}{
		{"ok", "GET", key + "&qname=john-chat&msg=hi", "", 200},
		{"post form", "POST", "", key + "&qname=john-chat&msg=hi+there", 200},
		{"wrong method", "DELETE", key + "&qname=john-chat&msg=hi", "", 405},
		{"no key", "GET", "qname=john-chat&msg=hi", "", 401},
		{"unknown key", "GET", "api_key=00000000000000000000000000000000&qname=john-chat&msg=hi", "", 401},
		{"401 before 400", "GET", "qname=&msg=%zz", "", 401},
		{"no qname", "GET", key + "&msg=hi", "", 400},
		{"bad channel", "GET", key + "&qname=john-ch%20at&msg=hi", "", 400},
		{"qname 65 bytes", "GET", key + "&qname=john-" + strings.Repeat("c", 60) + "&msg=hi", "", 400},
		{"other user", "GET", key + "&qname=mary-chat&msg=hi", "", 403},
		{"no msg", "GET", key + "&qname=john-chat", "", 400},
		{"empty msg ok", "GET", key + "&qname=john-chat&msg=", "", 200},
		{"msg 4096", "GET", key + "&qname=john-chat&msg=" + strings.Repeat("m", 4096), "", 200},
		{"msg 4097", "GET", key + "&qname=john-chat&msg=" + strings.Repeat("m", 4097), "", 413},
		{"413 before 403", "GET", key + "&qname=mary-chat&msg=" + strings.Repeat("m", 4097), "", 413},
		{"empty tick", "GET", key + "&qname=john-chat&msg=hi&tick=", "", 400},
		{"tick 65", "GET", key + "&qname=john-chat&msg=hi&tick=" + strings.Repeat("t", 65), "", 400},
		{"dup param", "GET", key + "&qname=john-chat&msg=a&msg=b", "", 400},
		{"bad utf8", "GET", key + "&qname=john-chat&msg=%ff", "", 400},
		{"flush", "GET", key + "&qname=john-chat&flush=1", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.serve(tc.method, "/write", tc.query, tc.body, header{"Content-Type": "application/x-www-form-urlencoded"})
			f.await("answer", func() bool { return c.numReplies() > 0 })
			r := c.lastReply(t)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			v := decode(t, r.body)
			if tc.status != 200 {
				if v["code"] != "error" || v["status"] != float64(tc.status) {
					t.Fatalf("error body %s", r.body)
				}
			} else if v["code"] != "ok" {
				t.Fatalf("body %s", r.body)
			}
			if r.ctype != ctJSON {
				t.Fatalf("content type %q", r.ctype)
			}
		})
	}
}

func TestWriteIdempotentAndConflict(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	if r := f.write("qname=john-c&msg=one&tick=t1"); r.body != `{"code":"ok","tick":"t1"}` {
		t.Fatalf("first write: %s", r.body)
	}
	if r := f.write("qname=john-c&msg=one&tick=t1"); r.status != 200 {
		t.Fatalf("re-send: %d %s", r.status, r.body)
	}
	if r := f.write("qname=john-c&msg=two&tick=t1"); r.status != 409 {
		t.Fatalf("conflict: %d %s", r.status, r.body)
	}
	c := f.serve("GET", "/read", "qname=john-c", "", nil)
	if got := c.lastReply(t).body; got != `{"code":"ok","messages":[["t1","one"]]}` {
		t.Fatalf("read: %s", got)
	}
}

// uuidRE matches a lowercase canonical UUID (EZ-W-04).
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// A write with no tick is answered with the UUID the store generated
// (EZ-W-04/05), which readers see and which then works as any tick: a
// resume point, an idempotent re-send, a conflict.
func TestGeneratedTick(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	var ticks []string
	for _, m := range []string{"one", "two"} {
		r := f.write("qname=john-c&msg=" + m)
		v := decode(t, r.body)
		tick, _ := v["tick"].(string)
		if r.status != 200 || !uuidRE.MatchString(tick) {
			t.Fatalf("write with no tick: %d %s", r.status, r.body)
		}
		ticks = append(ticks, tick)
	}
	c := f.serve("GET", "/read", "qname=john-c", "", nil)
	if got, want := c.lastReply(t).body, fmt.Sprintf(`{"code":"ok","messages":[[%q,"one"],[%q,"two"]]}`, ticks[0], ticks[1]); got != want {
		t.Fatalf("read: %s, want %s", got, want)
	}
	c = f.serve("GET", "/read", "qname=john-c&tick="+ticks[0], "", nil)
	if got, want := c.lastReply(t).body, fmt.Sprintf(`{"code":"ok","messages":[[%q,"two"]]}`, ticks[1]); got != want {
		t.Fatalf("read after the first: %s, want %s", got, want)
	}
	if r := f.write("qname=john-c&msg=one&tick=" + ticks[0]); r.status != 200 || f.store.EZLastSeq("john-c") != 2 {
		t.Fatalf("re-send: %d %s, last seq %d", r.status, r.body, f.store.EZLastSeq("john-c"))
	}
	if r := f.write("qname=john-c&msg=other&tick=" + ticks[0]); r.status != 409 {
		t.Fatalf("conflict: %d %s", r.status, r.body)
	}
}

// takeTick: the room already holds the tick (a local store), gets a
// copy (a remote one), or a random UUID (none came back).
func TestTakeTick(t *testing.T) {
	room := make([]byte, uuidLen)
	op := &writeOp{w: persist.EZWrite{Tick: room}}
	copy(room, "01234567-89ab-8cde-8f01-23456789abcd")
	op.takeTick(room)
	if string(room) != "01234567-89ab-8cde-8f01-23456789abcd" {
		t.Fatalf("own tick: %q", room)
	}
	op.takeTick([]byte("11111111-2222-8333-8444-555555555555"))
	if string(room) != "11111111-2222-8333-8444-555555555555" {
		t.Fatalf("remote tick: %q", room)
	}
	op.takeTick(nil)
	if !uuidRE.Match(room) {
		t.Fatalf("no tick: %q", room)
	}
}

func TestLongPollWaitsThenDelivers(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	r := f.write("qname=john-c&msg=first&tick=a")
	if r.status != 200 {
		t.Fatal(r.body)
	}
	// At the newest tick the poll waits (EZ-R-04)...
	c := f.serve("GET", "/read", "qname=john-c&tick=a&timeout=60&callback=cb", "", nil)
	if c.numReplies() != 0 || c.held.Seconds() != 60 {
		t.Fatalf("poll did not wait: replies=%d held=%v", c.numReplies(), c.held)
	}
	// ...and the next write wakes it with exactly that message, as JSONP.
	f.write("qname=john-c&msg=sec%22ond&tick=b")
	f.await("poll answer", func() bool { return c.numReplies() == 1 })
	got := c.lastReply(t)
	if got.body != `cb({"code":"ok","messages":[["b","sec\"ond"]]});` || got.ctype != ctJS {
		t.Fatalf("poll answer %q %q", got.ctype, got.body)
	}
	if !strings.Contains(got.hdrs, "Access-Control-Allow-Origin: *") {
		t.Fatalf("no CORS: %q", got.hdrs)
	}
	// Another write must not answer the same poll twice.
	f.write("qname=john-c&msg=third")
	f.loop.sync()
	if c.numReplies() != 1 {
		t.Fatalf("poll answered %d times", c.numReplies())
	}
	if n := f.api.stats.deliveries.Load(); n != 1 {
		t.Fatalf("deliveries metric = %d, want 1", n)
	}
}

func TestLongPollTimeoutAndDrain(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	c := f.serve("GET", "/read", "qname=john-empty&timeout=5", "", nil)
	f.loop.do(func() { f.api.Expired(c) })
	if got := c.lastReply(t).body; got != `{"code":"ok","messages":[]}` {
		t.Fatalf("expired: %s", got)
	}
	p := f.serve("GET", "/read", "qname=john-empty", "", nil)
	w := f.serve("GET", "/read/ws", "qname=john-empty", "", nil)
	f.loop.do(func() { f.api.Drain(p); f.api.Drain(w) })
	v := decode(t, p.lastReply(t).body)
	if ms, _ := v["retry_ms"].(float64); ms < 1 {
		t.Fatalf("drain answer without retry_ms: %v", v)
	}
	if !w.closed || w.closeCode != 1001 || w.closeWhy != "restart" {
		t.Fatalf("ws not closed 1001 restart: %+v", w)
	}
	if r := f.serve("GET", "/healthz", "", "", nil).lastReply(t); r.status != 503 {
		t.Fatalf("healthz while draining: %d", r.status)
	}
}

func TestReadErrors(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	for _, tc := range []struct {
		path, query string
		status      int
	}{
		{"/read", "qname=nobody-c", 404},
		{"/read/ws", "qname=nobody-c", 404},
		{"/read/sse", "qname=nobody-c", 404},
		{"/read", "", 400},
		{"/read", "qname=john-c&timeout=121", 400},
		{"/read", "qname=john-c&timeout=x", 400},
		{"/read", "qname=john-c&callback=1x", 400},
		{"/nowhere", "", 404},
	} {
		c := f.serve("GET", tc.path, tc.query, "", nil)
		if r := c.lastReply(t); r.status != tc.status {
			t.Errorf("%s?%s: %d, want %d", tc.path, tc.query, r.status, tc.status)
		}
		if c.upgraded || c.streaming {
			t.Errorf("%s?%s: upgraded before refusing", tc.path, tc.query)
		}
	}
	// JSONP applies to errors too.
	r := f.serve("GET", "/read", "qname=nobody-c&callback=cb", "", nil).lastReply(t)
	if !strings.HasPrefix(r.body, "cb({") || r.status != 404 {
		t.Fatalf("jsonp error: %d %s", r.status, r.body)
	}
}

func TestWebSocketAndSSEStreams(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	for i := 1; i <= 3; i++ {
		f.write(fmt.Sprintf("qname=john-s&msg=m%d&tick=t%d", i, i))
	}
	ws := f.serve("GET", "/read/ws", "qname=john-s&tick=t1", "", nil)
	sse := f.serve("GET", "/read/sse", "qname=john-s&tick=t1", "", header{"Last-Event-ID": "t2"})
	f.write("qname=john-s&msg=line1%0Aline2&tick=t4")
	f.await("live delivery", func() bool { return len(ws.sent) == 3 && len(sse.sent) == 3 })
	wantWS := []string{`["t2","m2"]`, `["t3","m3"]`, `["t4","line1\nline2"]`}
	for i, frame := range ws.sentCopy() {
		// A server text frame: 0x81, then a 7-bit length for these sizes.
		if frame[0] != 0x81 || frame[2:] != wantWS[i] {
			t.Errorf("ws frame %d = %q, want %q", i, frame, wantWS[i])
		}
	}
	wantSSE := []string{":\n\n", "id: t3\ndata: m3\n\n", "id: t4\ndata: line1\ndata: line2\n\n"}
	for i, ev := range sse.sentCopy() {
		if ev != wantSSE[i] {
			t.Errorf("sse event %d = %q, want %q", i, ev, wantSSE[i])
		}
	}
	// A closed reader leaves the index; its channel's entry goes at the
	// second sweep (index.go).
	f.loop.do(func() { f.api.Closed(ws); f.api.Closed(sse) })
	f.loop.do(func() {
		ls := f.api.state[0]
		if cs := ls.subs["john-s"]; cs == nil || len(cs.list) != 0 {
			t.Errorf("after close: entry %+v, want an empty one lingering", cs)
		}
		ls.sweep()
		ls.sweep()
		if n := len(ls.subs); n != 0 {
			t.Errorf("%d channels still indexed after close and two sweeps", n)
		}
	})
}

func TestGapSignal(t *testing.T) {
	f := newFixture(t, persist.Options{EZMaxQueue: 3}, Options{})
	for i := 1; i <= 6; i++ {
		f.write(fmt.Sprintf("qname=john-g&msg=m%d&tick=t%d", i, i))
	}
	// t1 was dropped by retention and t2..t3 with it: a gap.
	r := f.serve("GET", "/read", "qname=john-g&tick=t1", "", nil).lastReply(t)
	if r.body != `{"code":"ok","gap":true,"messages":[["t4","m4"],["t5","m5"],["t6","m6"]]}` {
		t.Fatalf("gap read: %s", r.body)
	}
	// A tick the channel never had: all messages, no gap.
	r = f.serve("GET", "/read", "qname=john-g&tick=never", "", nil).lastReply(t)
	if strings.Contains(r.body, "gap") {
		t.Fatalf("unknown tick gave a gap: %s", r.body)
	}
	ws := f.serve("GET", "/read/ws", "qname=john-g&tick=t1", "", nil)
	if s := ws.sentCopy(); len(s) == 0 || s[0][2:] != `{"gap":true}` {
		t.Fatalf("ws gap frame missing: %q", s)
	}
	sse := f.serve("GET", "/read/sse", "qname=john-g&tick=t1", "", nil)
	if s := sse.sentCopy(); len(s) < 2 || s[0] != ":\n\n" || s[1] != "event: gap\ndata: {\"gap\":true}\n\n" {
		t.Fatalf("sse gap event missing: %q", s)
	}
}

// TestFanoutAllocs is P5's budget: delivering one message to every
// WebSocket reader of a channel allocates nothing per reader.
func TestFanoutAllocs(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{})
	conns := make([]*fakeConn, 200)
	for i := range conns {
		conns[i] = newFakeConn()
		conns[i].countOnly = true
		f.serveOn(conns[i], "GET", "/read/ws", "qname=john-fan", "", nil)
	}
	ls := f.api.state[0]
	seq := uint64(0)
	var allocs float64
	f.loop.do(func() {
		d := newDelivery("john-fan", persist.Message{Seq: 1, Tick: []byte("t"), Body: []byte("hello")})
		allocs = testing.AllocsPerRun(50, func() {
			seq++
			d.seq = seq
			ls.deliver(d)
		})
	})
	if allocs != 0 {
		t.Fatalf("fan-out to %d readers: %v allocs per message, want 0", len(conns), allocs)
	}
	if conns[0].sentBytes == 0 {
		t.Fatal("nothing delivered")
	}
}
