package protocol

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
)

// controlText is n bytes that JSON escapes to 6 each (\u0001).
func controlText(n int) string { return strings.Repeat("\x01", n) }

// TestEZPollAnswerBoundedInBytes: a long-poll answer holds at most
// ReadBatchBytes of JSON, counted after escaping, and at least one
// message; a reader that goes on from the last tick it got reads every
// message once, in order (C-08, EZ-R-06).
func TestEZPollAnswerBoundedInBytes(t *testing.T) {
	for _, limit := range []int{64 << 10, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			f := newFixture(t, persist.Options{}, Options{ReadBatchBytes: limit})
			msg := url.QueryEscape(controlText(4096)) // 24.6 KB of JSON each
			for i := 1; i <= 10; i++ {
				f.write(fmt.Sprintf("qname=john-esc&msg=%s&tick=t%d", msg, i))
			}
			var got []string
			tick := ""
			for range 20 {
				r := f.serve("GET", "/read", "qname=john-esc&timeout=0&tick="+tick, "", nil).lastReply(t)
				if len(r.body) > max(limit, len(`{"code":"ok","messages":[]}`)+6*4096+16) {
					t.Fatalf("answer of %d bytes, bound %d", len(r.body), limit)
				}
				var v struct{ Messages [][2]string }
				if err := json.Unmarshal([]byte(r.body), &v); err != nil {
					t.Fatal(err)
				}
				if len(v.Messages) == 0 {
					break
				}
				if limit == 64<<10 && len(v.Messages) != 2 && len(got)+len(v.Messages) != 10 {
					t.Fatalf("%d messages in a 64 KiB answer, want 2", len(v.Messages))
				}
				for _, m := range v.Messages {
					if m[1] != controlText(4096) {
						t.Fatal("message altered")
					}
					got = append(got, m[0])
				}
				tick = got[len(got)-1]
			}
			if strings.Join(got, ",") != strings.Join(ticks(1, 10), ",") {
				t.Fatalf("read %v", got)
			}
		})
	}
}

// TestEZCatchUpAnswerBoundedInBytes: a waiting poll that finds several
// messages when it wakes (its delivery came after others) answers within
// the bound too.
func TestEZCatchUpAnswerBoundedInBytes(t *testing.T) {
	f := newFixture(t, persist.Options{}, Options{ReadBatchBytes: 64 << 10})
	f.write("qname=john-cu&msg=first&tick=t1")
	p := f.serve("GET", "/read", "qname=john-cu&tick=t1&timeout=60", "", nil)
	var last persist.Message
	for i := 2; i <= 6; i++ {
		ch := make(chan persist.EZWriteResult, 1)
		f.store.EZWrite(persist.EZWrite{QName: "john-cu", Tick: []byte(fmt.Sprint("t", i)), Body: []byte(controlText(4096))},
			func(r persist.EZWriteResult) { ch <- r })
		last = (<-ch).Msg
	}
	f.loop.do(func() { f.api.state[0].deliver(newDelivery("john-cu", last)) })
	f.settle()
	r := p.lastReply(t)
	var v struct{ Messages [][2]string }
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	if len(r.body) > 64<<10 || len(v.Messages) != 2 || v.Messages[0][0] != "t2" {
		t.Fatalf("catch-up answer: %d bytes, %d messages", len(r.body), len(v.Messages))
	}
}

// TestCFPollAnswerBoundedInBytes: a Cometify poll answer stays within
// ReadBatchBytes (escapes counted), holds at least one push, and its
// since, passed back, gets the rest: every push once, in id order per
// identifier, each gap told once, before that identifier's pushes.
func TestCFPollAnswerBoundedInBytes(t *testing.T) {
	for _, limit := range []int{128 << 10, 1000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			f := &cfFixture{fixture: newFixture(t, persist.Options{Now: clk.now, SweepInterval: -1, CFRetain: time.Hour},
				Options{Now: clk.now, ReadBatchBytes: limit}), clk: clk}
			f.push("news", "old", false, "") // news:1, 2: news:2 is out of the
			f.push("news", "old", false, "") // resume window of news:1 below
			clk.add(5 * time.Minute)
			for range 6 {
				f.push("chat", controlText(8192), false, "") // 49 KB of JSON each
				f.push("news", controlText(8192), false, "")
			}
			f.push("chat", "secret", true, "") // chat:7, skipped: no secureKey
			since := "chat:0,news:1"
			var got []string
			for round := 0; ; round++ {
				if round == 30 {
					t.Fatal("still reading after 30 polls")
				}
				r := f.listen("poll", "identifiers="+since+"&timeout=0", "10.8.0.1", nil).lastReply(t)
				bound := max(limit, 6*8192+400)
				if len(r.body) > bound {
					t.Fatalf("answer of %d bytes, bound %d", len(r.body), bound)
				}
				var v struct {
					Pushes []struct {
						Identifier string
						ID         int
					}
					GapIdentifiers []string `json:"gap_identifiers"`
					Since          string
				}
				if err := json.Unmarshal([]byte(r.body), &v); err != nil {
					t.Fatal(err)
				}
				for _, g := range v.GapIdentifiers {
					got = append(got, "GAP:"+g)
				}
				for _, p := range v.Pushes {
					got = append(got, fmt.Sprintf("%s:%d", p.Identifier, p.ID))
				}
				if v.Since == since && len(v.Pushes) == 0 {
					break
				}
				since = v.Since
			}
			if g, w := only(got, "chat"), strings.Join(ids("chat", 1, 6), ","); g != w {
				t.Fatalf("chat: %s, want %s", g, w)
			}
			if g, w := only(got, "news"), "GAP:news,"+strings.Join(ids("news", 3, 8), ","); g != w {
				t.Fatalf("news: %s, want %s", g, w)
			}
			if since != "chat:7,news:8" {
				t.Fatalf("final since %s", since)
			}
		})
	}
}

// TestCFPollReadsPastHiddenPushes: a poll without a secureKey whose read
// is cut before any push it may see (secret pushes fill the read's bytes,
// CF-L-07) reads on, and answers at once with the public push stored
// after them: deliveries bring only new pushes, so a poll that waited
// would miss it until the next one.
func TestCFPollReadsPastHiddenPushes(t *testing.T) {
	f := newCFFixture(t, Options{ReadBatchBytes: 1000})
	for range 5 {
		f.push("news", strings.Repeat("s", 800), true, "")
	}
	f.push("news", "public", false, "")
	for _, q := range []string{"identifiers=news:0&timeout=60", "identifiers=news:0&timeout=0", "identifiers=news:2&timeout=60"} {
		c := f.listen("poll", q, "10.8.0.1", nil)
		if c.numReplies() == 0 {
			t.Fatalf("%s: the poll waits", q)
		}
		r := c.lastReply(t)
		var v struct {
			Pushes []struct{ ID int }
			Since  string
		}
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Fatal(err)
		}
		if len(v.Pushes) != 1 || v.Pushes[0].ID != 6 || v.Since != "news:6" {
			t.Fatalf("%s: %s", q, r.body)
		}
	}
}

// readCounter is a real store that adds up the stored bytes its reads
// return.
type readCounter struct {
	*persist.Store
	bytes atomic.Int64
}

func (s *readCounter) count(msgs []persist.Message) {
	for _, m := range msgs {
		s.bytes.Add(int64(len(m.Tick) + len(m.Body)))
	}
}

func (s *readCounter) EZRead(qname string, tick []byte, lim persist.ReadLimit) (persist.ReadResult, error) {
	r, err := s.Store.EZRead(qname, tick, lim)
	s.count(r.Messages)
	return r, err
}

func (s *readCounter) EZReadAfter(qname string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error) {
	r, err := s.Store.EZReadAfter(qname, after, lim)
	s.count(r.Messages)
	return r, err
}

func (s *readCounter) CFRead(topic []byte, after uint64, notBefore int64, lim persist.ReadLimit) (persist.CFReadResult, error) {
	r, err := s.Store.CFRead(topic, after, notBefore, lim)
	for _, p := range r.Pushes {
		s.bytes.Add(int64(len(p.Text)))
	}
	return r, err
}

// TestReadsBoundedInBytes: the store reads behind one poll answer hold
// about ReadBatchBytes, not ReadBatch messages (C-08): a client that
// pipelines polls costs no more than the answers' bytes in reads. An
// EZComet poll reads a quarter of it at a time, so messages that escape
// cost no more. A Cometify poll's identifiers share that budget, each
// reading one push at least.
func TestReadsBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	f := newCFFixture(t, Options{})
	rc := &readCounter{Store: f.store}
	api, err := New(Options{Store: rc, Now: f.clk.now, ReadBatchBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(f.loop)
	t.Cleanup(api.Close)
	f.api = api

	body := strings.Repeat("m", 4000)
	for i := range 40 {
		f.write(fmt.Sprintf("qname=john-big&tick=t%d&msg=%s", i, body))
	}
	// Read a quarter of the bound at a time: the bound and one step.
	r := f.serve("GET", "/read", "qname=john-big&timeout=0", "", nil).lastReply(t)
	if n := rc.bytes.Swap(0); n > limit+limit/4 {
		t.Errorf("an EZComet poll read %d bytes, bound %d", n, limit+limit/4)
	}
	if len(r.body) > limit || strings.Count(r.body, body) != 16 {
		t.Errorf("an answer of %d bytes holding %d messages of 4 KB, want 16", len(r.body), strings.Count(r.body, body))
	}
	// Messages that escape to six times their size: the poll reads one
	// step, not the answer's bound in stored bytes.
	ctl := url.QueryEscape(controlText(4000))
	for i := range 20 {
		f.write(fmt.Sprintf("qname=john-ctl&tick=c%d&msg=%s", i, ctl))
	}
	rc.bytes.Store(0)
	r = f.serve("GET", "/read", "qname=john-ctl&timeout=0", "", nil).lastReply(t)
	if n := rc.bytes.Swap(0); n > limit/4 {
		t.Errorf("an EZComet poll of escaped messages read %d bytes, bound %d", n, limit/4)
	}
	if strings.Count(r.body, `["c`) != 2 {
		t.Errorf("an answer of %d bytes holding %d messages of 24 KB, want 2", len(r.body), strings.Count(r.body, `["c`))
	}

	text := strings.Repeat("p", 30_000)
	for _, ident := range []string{"a", "b", "c"} {
		for range 6 {
			f.push(ident, text, false, "")
		}
	}
	r = f.listen("poll", "identifiers=a:0,b:0,c:0&timeout=0", "10.8.0.1", nil).lastReply(t)
	if n := rc.bytes.Swap(0); n > limit+2*30_000 {
		t.Errorf("a poll of 3 identifiers read %d bytes, bound %d", n, limit+2*30_000)
	}
	if strings.Count(r.body, text) != 2 || !strings.Contains(r.body, `"since":"a:2,b:0,c:0"`) {
		t.Errorf("answer holding %d pushes of 30 KB: %.200s", strings.Count(r.body, text), r.body)
	}
}

// TestPollScratchKeepsNoPushes: a Cometify poll answer needs no buffer
// besides the one it is rendered in. (The pushes it read live in its
// read, dropped once answered: the loop keeps none.)
func TestPollScratchKeepsNoPushes(t *testing.T) {
	f := newCFFixture(t, Options{})
	for range 3 {
		f.push("a", strings.Repeat("p", 10_000), false, "")
		f.push("b", "gap-free", false, "")
	}
	r := f.listen("poll", "identifiers=a:0,b:0&timeout=0", "10.8.0.1", nil).lastReply(t)
	if strings.Count(r.body, `"identifier":"`) != 6 {
		t.Fatalf("answer %.200s", r.body)
	}
	f.loop.do(func() {
		ls := f.api.state[0]
		if cap(ls.pollHead) > 1024 {
			t.Errorf("a head buffer of %d bytes", cap(ls.pollHead))
		}
	})
}

// flushingStore is a real store that flushes a channel and writes one
// message to it just before its first EZReadAfter: what a concurrent
// flush does between the reads behind one poll answer.
type flushingStore struct {
	*persist.Store
	t    *testing.T
	once sync.Once
}

func (s *flushingStore) EZReadAfter(qname string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error) {
	s.once.Do(func() {
		for _, w := range []persist.EZWrite{{QName: qname, Flush: true}, {QName: qname, Tick: []byte("after"), Body: []byte("x")}} {
			ch := make(chan persist.EZWriteResult, 1)
			s.Store.EZWrite(w, func(r persist.EZWriteResult) { ch <- r })
			if r := <-ch; r.Err != nil {
				s.t.Error(r.Err)
			}
		}
	})
	return s.Store.EZReadAfter(qname, after, lim)
}

// TestEZPollStepsStopAtGap: a long-poll answer read in steps stops before
// a step that finds messages dropped after the last one given (a flush
// meanwhile), so the gap is not lost: the next poll, from the last tick
// given, tells it and gets what was written since.
func TestEZPollStepsStopAtGap(t *testing.T) {
	f := newCFFixture(t, Options{})
	fs := &flushingStore{Store: f.store, t: t}
	api, err := New(Options{Store: fs, Now: f.clk.now, ReadBatchBytes: 4000}) // steps of 1000 bytes
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(f.loop)
	t.Cleanup(api.Close)
	f.api = api
	for i := 1; i <= 5; i++ {
		f.write(fmt.Sprintf("qname=john-fl&tick=t%d&msg=%s", i, strings.Repeat("m", 900)))
	}
	var v struct {
		Gap      bool
		Messages [][2]string
	}
	r := f.serve("GET", "/read", "qname=john-fl&timeout=0", "", nil).lastReply(t)
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Gap || len(v.Messages) != 1 || v.Messages[0][0] != "t1" {
		t.Fatalf("first answer: %.120s", r.body)
	}
	r = f.serve("GET", "/read", "qname=john-fl&timeout=0&tick=t1", "", nil).lastReply(t)
	v.Messages = nil
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Gap || len(v.Messages) != 1 || v.Messages[0][0] != "after" {
		t.Fatalf("next answer: %.120s", r.body)
	}
}
