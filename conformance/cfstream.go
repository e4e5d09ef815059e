package conformance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// cfStream is one Cometify listener on one transport (CF-L-01 WebSocket,
// CF-L-02 long-poll, CF-L-03 SSE) behind one interface, so that every
// listen rule is checked the same way on all three. A long-poll listener is
// what a client does: one poll outstanding at a time, each next poll asking
// with the "since" of the answer before.
type cfStream struct {
	t    *caseT
	via  string
	acct Account
	key  string // secureKey, "" for none
	// emptyKey sends secureKey= with no value (CF-L-06: the same as none).
	emptyKey bool
	// resume is the latest resume point the listener was told: the since
	// frame advanced by each push (WebSocket), the last SSE id, the since
	// of the last poll answer; "" until one came.
	resume string
	// skipGaps makes nextData pass over gap signals, for cases that check
	// another rule and leave gaps to X-01.
	skipGaps bool
	buf      []cfItem
	ws       *wsConn
	sse      *sseConn

	// long-poll state
	pollList string   // LIST of the next poll
	names    []string // the names as first given, case kept
	pending  chan pollResult
	pw       *wireConn
}

// pollTimeout is the timeout each poll of a long-poll listener asks for.
const pollTimeout = 5

type pollResult struct {
	r    *reply
	err  error
	took time.Duration
}

// cfOpen holds a listener's optional parts.
type cfOpen struct {
	acct        Account // zero means the main account
	secureKey   string  // sent when non-empty
	emptyKey    bool    // send secureKey= with no value
	lastEventID string  // SSE only, sent when non-empty
}

// openCF starts a listener on via for LIST list, or fails the case when
// the server refuses it. A long-poll listener sends its first poll here;
// for a plain LIST it then waits briefly, since nothing tells a client
// when the server has registered a waiting poll.
func (t *caseT) openCF(via, list string, o cfOpen) *cfStream {
	if o.acct.CFKey == "" {
		o.acct = t.cfg.Account
	}
	s := &cfStream{t: t, via: via, acct: o.acct, key: o.secureKey, emptyKey: o.emptyKey, pollList: list}
	for _, part := range strings.Split(list, ",") {
		name, _, _ := strings.Cut(part, ":")
		s.names = append(s.names, name)
	}
	kv := []string{"", ""}
	if o.secureKey != "" || o.emptyKey {
		kv = []string{"secureKey", o.secureKey}
	}
	switch via {
	case viaWS:
		s.ws = t.mustWS(listenerPath(o.acct, via, list, kv...))
		s.ws.start()
	case viaSSE:
		var hs []string
		if o.lastEventID != "" {
			hs = append(hs, "Last-Event-ID: "+o.lastEventID)
		}
		s.sse = t.mustSSE(listenerPath(o.acct, via, list, kv...), hs...)
		s.sse.start()
	default:
		s.sendPoll()
		if !strings.Contains(list, ":") {
			t.sleep(t.cfg.scaled(300 * time.Millisecond))
		}
	}
	return s
}

// refusedCF opens a listener that the server must refuse, and returns its
// answer: for WebSocket and SSE a non-upgrade answer, for a poll an answer
// that came at once.
func (t *caseT) refusedCF(via, path string, headers ...string) *reply {
	switch via {
	case viaWS:
		c, r := t.openWS(path, headers...)
		if c != nil {
			c.close()
			t.Fatalf("GET %s upgraded to a WebSocket; want it refused before the upgrade", path)
		}
		return r
	case viaSSE:
		c, r := t.openSSE(path, headers...)
		if c != nil {
			c.close()
			t.Fatalf("GET %s opened an event stream; want it refused", path)
		}
		return r
	}
	start := time.Now()
	w := t.dial()
	defer w.close()
	w.send(t.request("GET", path, "", headers...))
	r, err := w.readErr("GET", atOnce+time.Second)
	if err != nil {
		t.Fatalf("GET %s: no answer within %v (%v); want a refusal at once, not a waiting poll", path, t.cfg.scaled(atOnce+time.Second), err)
	}
	if took := time.Since(start); took > t.cfg.scaled(atOnce) {
		t.Fatalf("GET %s: the refusal came after %v, want at once", path, took.Round(time.Millisecond))
	}
	return r
}

// diagnose is what a poll from id 0 with timeout=0 answers now for the
// identifiers of want, for a failure detail: it tells a push the server
// no longer has from one it has but did not deliver.
func (s *cfStream) diagnose(want []cfItem) string {
	t := s.t
	var pairs []any
	seen := map[string]bool{}
	for _, it := range want {
		if !seen[it.ident] {
			seen[it.ident] = true
			pairs = append(pairs, it.ident, 0)
		}
	}
	if len(pairs) == 0 {
		return ""
	}
	kv := []string{"timeout", "0"}
	if s.key != "" {
		kv = append(kv, "secureKey", s.key)
	}
	w, err := t.dialErr(0)
	if err != nil {
		return ""
	}
	defer w.close()
	if w.trySend(t.request("GET", listenerPath(s.acct, viaPoll, idList(pairs...), kv...), "")) != nil {
		return ""
	}
	r, err := w.readErr("GET", 5*time.Second)
	if err != nil {
		return fmt.Sprintf(" [diagnostic poll from id 0: %v]", err)
	}
	return fmt.Sprintf(" [a poll from id 0 now answers %s]", clip(r.body))
}

func (s *cfStream) sendPoll() {
	t := s.t
	if s.pw != nil {
		s.pw.close()
	}
	s.pw = t.dial()
	kv := []string{"timeout", strconv.Itoa(pollTimeout)}
	if s.key != "" || s.emptyKey {
		kv = append(kv, "secureKey", s.key)
	}
	s.pw.send(t.request("GET", listenerPath(s.acct, viaPoll, s.pollList, kv...), ""))
	ch := make(chan pollResult, 1)
	w, start := s.pw, time.Now()
	go func() {
		r, err := w.readErr("GET", pollTimeout*time.Second+defaultWait)
		ch <- pollResult{r: r, err: err, took: time.Since(start)}
	}()
	s.pending = ch
}

func (s *cfStream) close() {
	switch {
	case s.ws != nil:
		s.ws.close()
	case s.sse != nil:
		s.sse.close()
	case s.pw != nil:
		s.pw.close()
	}
}

// next returns the next item within d (scaled), since items included; ok
// is false when none came.
func (s *cfStream) next(d time.Duration) (cfItem, bool) {
	t := s.t
	ctx := fmt.Sprintf("%s listener", s.via)
	switch s.via {
	case viaWS:
		for {
			f, ok := s.ws.next(d)
			if !ok {
				return cfItem{}, false
			}
			if f.err != nil {
				t.Fatalf("%s: stream ended: %v", ctx, f.err)
			}
			if f.op == ws.OpClose {
				t.Fatalf("%s: server closed with %d %q", ctx, f.code, f.reason)
			}
			if f.op != ws.OpText {
				t.Fatalf("%s: want text frames, got opcode %v", ctx, f.op)
			}
			it, known := t.decodeCFObject(ctx, f.payload)
			if !known {
				continue
			}
			s.note(it)
			return it, true
		}
	case viaSSE:
		for {
			e, ok := s.sse.nextEvent(d)
			if !ok {
				return cfItem{}, false
			}
			if e.err != nil {
				t.Fatalf("%s: stream ended: %v", ctx, e.err)
			}
			switch {
			case e.event == "gap":
				it, known := t.decodeCFObject(ctx+" gap event", []byte(e.data))
				if !known || it.kind != cfGap {
					t.Fatalf(`%s: event: gap must carry {"gap":true,"identifier":"<name>"}, got %s`, ctx, e.describe())
				}
				return it, true
			case e.event != "" && e.event != "message":
				continue // an event type this suite does not know
			case !e.hasData:
				s.resume = e.id
				return cfItem{kind: cfSince, since: e.id}, true
			}
			it, known := t.decodeCFObject(ctx, []byte(e.data))
			if !known {
				continue
			}
			if it.kind != cfPush {
				t.Fatalf("%s: a message event must carry a push, got %s", ctx, e.describe())
			}
			if !e.hasID {
				t.Fatalf("%s: a push event without id: (the LIST in id form): %s", ctx, e.describe())
			}
			s.resume = e.id
			return it, true
		}
	}
	end := time.Now().Add(t.cfg.scaled(d))
	for len(s.buf) == 0 {
		if s.pending == nil {
			s.sendPoll()
		}
		timer := time.NewTimer(time.Until(end))
		select {
		case res := <-s.pending:
			timer.Stop()
			s.pending = nil
			if res.err != nil {
				t.Fatalf("%s: poll %s: %v", ctx, s.pollList, res.err)
			}
			a := t.decodeCFPoll(res.r, res.took, ctx+" poll "+s.pollList)
			s.pollList, s.resume = s.asGiven(a.since), a.since
			s.buf = append(s.buf, a.items...)
		case <-timer.C:
			return cfItem{}, false
		case <-t.ctx.Done():
			timer.Stop()
			t.Fatalf("%s: %v", ctx, t.ctx.Err())
		}
	}
	it := s.buf[0]
	s.buf = s.buf[1:]
	return it, true
}

// asGiven is an answer's since with the names as the listener first gave
// them, as a client keeps its own names: a secureKey is over the names as
// sent, case kept (CF-L-06), while since names them in lower case.
func (s *cfStream) asGiven(since string) string {
	names, ids, err := parseIDList(since)
	if err != nil || len(names) != len(s.names) {
		return since
	}
	pairs := make([]any, 0, 2*len(names))
	for i := range names {
		if !strings.EqualFold(names[i], s.names[i]) {
			return since
		}
		pairs = append(pairs, s.names[i], ids[i])
	}
	return idList(pairs...)
}

// note keeps a WebSocket listener's resume point current.
func (s *cfStream) note(it cfItem) {
	switch it.kind {
	case cfSince:
		s.resume = it.since
	case cfPush:
		if s.resume != "" {
			s.resume = advance(s.resume, it.ident, it.id)
		}
	}
}

// nextData is next without resume points (and without gap signals when
// skipGaps is set).
func (s *cfStream) nextData(d time.Duration) (cfItem, bool) {
	end := time.Now().Add(s.t.cfg.scaled(d))
	for {
		left := time.Until(end)
		if left <= 0 {
			return cfItem{}, false
		}
		it, ok := s.next(time.Duration(float64(left) / s.t.cfg.TimeoutScale))
		if !ok {
			return it, false
		}
		if it.kind == cfSince || (it.kind == cfGap && s.skipGaps) {
			continue
		}
		return it, true
	}
}

// expect reads exactly len(want) items (gap signals and pushes), each
// within d, and checks them per identifier in order: the spec orders a
// listener's pushes per identifier, not across identifiers.
func (s *cfStream) expect(d time.Duration, want []cfItem, ctx string) {
	var got []cfItem
	for i := range want {
		it, ok := s.nextData(d)
		if !ok {
			s.t.Fatalf("%s over %s: item %d of %d did not arrive within %v (got %v, want %v)%s", ctx, s.via, i+1, len(want), s.t.cfg.scaled(d), got, want, s.diagnose(want))
		}
		got = append(got, it)
	}
	if err := samePerIdentifier(got, want); err != nil {
		s.t.Fatalf("%s over %s: %v", ctx, s.via, err)
	}
}

// samePerIdentifier compares two item lists identifier by identifier.
func samePerIdentifier(got, want []cfItem) error {
	group := func(items []cfItem) map[string][]cfItem {
		m := map[string][]cfItem{}
		for _, it := range items {
			m[it.ident] = append(m[it.ident], it)
		}
		return m
	}
	g, w := group(got), group(want)
	for name, wl := range w {
		if !slices.Equal(g[name], wl) {
			return fmt.Errorf("for %s got %v, want %v (all got: %v)", name, g[name], wl, got)
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			return fmt.Errorf("got %v for %s, which should have nothing (all got: %v)", g[name], name, got)
		}
	}
	return nil
}

// expectNothing fails if a gap signal or push arrives within d.
func (s *cfStream) expectNothing(d time.Duration, ctx string) {
	if it, ok := s.nextData(d); ok {
		s.t.Fatalf("%s over %s: want nothing, got %v", ctx, s.via, it)
	}
}

// expectSince reads the listener's first item, which must be its resume
// point with the given LIST. A long-poll has no such item: its
// first answer's since is checked instead once one came.
func (s *cfStream) expectSince(want, ctx string) {
	if s.via == viaPoll {
		return
	}
	it, ok := s.next(atOnce)
	if !ok {
		s.t.Fatalf("%s over %s: no resume point within %v of connecting, before any push", ctx, s.via, s.t.cfg.scaled(atOnce))
	}
	if it.kind != cfSince {
		s.t.Fatalf("%s over %s: the first item must be the resume point %q, got %v", ctx, s.via, want, it)
	}
	if it.since != want {
		s.t.Fatalf("%s over %s: resume point %q, want %q", ctx, s.via, it.since, want)
	}
}
