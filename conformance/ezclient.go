package conformance

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// randHex is n random lowercase hex digits; fresh names keep runs apart.
func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// qname is a fresh channel of the main account.
func (t *caseT) qname() string { return t.cfg.Account.User + "-cf" + randHex(12) }

// form encodes name/value pairs in order, keeping repeats (url.Values would
// sort and merge them).
func form(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1]))
	}
	return b.String()
}

// write sends POST /write with form fields and returns the raw answer.
func (t *caseT) write(kv ...string) *reply {
	return t.do("POST", "/write", form(kv...))
}

// writeMsg writes msg (with tick if non-empty) to qname with the main key
// and returns the tick the server answered.
func (t *caseT) writeMsg(qname, msg, tick string) string {
	kv := []string{"api_key", t.cfg.Account.Key, "qname", qname, "msg", msg}
	if tick != "" {
		kv = append(kv, "tick", tick)
	}
	r := t.write(kv...)
	m := t.wantOK(r, "write "+qname)
	got, _ := m["tick"].(string)
	if tick != "" && got != tick {
		t.Fatalf("write with tick %q answered tick %q", tick, got)
	}
	if got == "" {
		t.Fatalf(`write answer has no "tick": %s`, r)
	}
	return got
}

// flush empties qname with flush=1.
func (t *caseT) flush(qname string) {
	t.wantOK(t.write("api_key", t.cfg.Account.Key, "qname", qname, "flush", "1"), "flush "+qname)
}

// writeMany writes msgs[i] with ticks[i] to qname over one keep-alive
// connection, pipelined (see pipeline), so that thousands of writes stay
// fast even when each is synced to disk. It returns when the first write
// was sent, for agedOut.
func (t *caseT) writeMany(qname string, msgs, ticks []string) time.Time {
	t.shared.bulk.Lock()
	defer t.shared.bulk.Unlock()
	start := time.Now()
	t.pipeline(len(msgs), 64, func(i int) string {
		return t.request("POST", "/write", form("api_key", t.cfg.Account.Key, "qname", qname, "msg", msgs[i], "tick", ticks[i]))
	}, func(i int, r *reply) {
		m := t.wantOK(r, fmt.Sprintf("pipelined write %d of %d", i+1, len(msgs)))
		if m["tick"] != ticks[i] {
			t.Fatalf("pipelined write %d answered tick %v, want %q (answers out of order?)", i+1, m["tick"], ticks[i])
		}
	})
	return start
}

// pipeline sends n requests (built by req) over one keep-alive connection
// with at most depth answers outstanding, and hands each answer to check,
// in order, on the calling goroutine. Keep depth × request size well under
// a MiB: that is as much as a client should have in flight.
func (t *caseT) pipeline(n, depth int, req func(i int) string, check func(i int, r *reply)) {
	w := t.dial()
	defer w.close()
	window := make(chan struct{}, depth)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := range n {
			select {
			case window <- struct{}{}:
			case <-stop:
				return
			}
			if w.trySend(req(i)) != nil {
				return // the reader below reports what the server did
			}
		}
	}()
	for i := range n {
		r, err := w.readErr("POST", 30*time.Second)
		if err != nil {
			t.Fatalf("pipelined request %d of %d: %v", i+1, n, err)
		}
		<-window
		check(i, r)
	}
}

// skipIfAged turns a failed retention-sensitive check into a skip when the
// messages it wrote at since may have outlived --ez-max-age: the suite was
// too slow to tell a server bug from age retention.
func (t *caseT) skipIfAged(since time.Time, err error) {
	if err == nil {
		return
	}
	if old := time.Since(since); old >= t.cfg.EZMaxAge-time.Second {
		t.Skipf("too slow for --ez-max-age %v: the first write is %v old (raise --ez-max-age): %v", t.cfg.EZMaxAge, old.Round(time.Millisecond), err)
	}
	t.Fatalf("%v", err)
}

// seqTicks makes n ticks "<prefix>-<i>" and messages "m<i>".
func seqTicks(prefix string, from, n int) (msgs, ticks []string) {
	for i := from; i < from+n; i++ {
		msgs = append(msgs, fmt.Sprintf("m%d", i))
		ticks = append(ticks, fmt.Sprintf("%s-%d", prefix, i))
	}
	return msgs, ticks
}

// ezItem is one message as a reader received it, or a gap signal.
type ezItem struct {
	tick, msg string
	gap       bool
}

func (i ezItem) String() string {
	if i.gap {
		return "<gap>"
	}
	return fmt.Sprintf("[%q,%q]", i.tick, i.msg)
}

// pollAnswer is a decoded /read answer.
type pollAnswer struct {
	raw      *reply
	messages []ezItem
	gap      bool
	took     time.Duration
	fields   map[string]any
}

// tickEmpty asks readPath for a present but empty tick parameter.
const tickEmpty = "\x00"

// readPath builds /read?… for qname, tick and timeout; tick "" and timeout
// < 0 leave the parameter out, tick tickEmpty sends "tick=".
func readPath(path, qname, tick string, timeout int) string {
	kv := []string{"qname", qname}
	if tick == tickEmpty {
		kv = append(kv, "tick", "")
	} else if tick != "" {
		kv = append(kv, "tick", tick)
	}
	if timeout >= 0 {
		kv = append(kv, "timeout", fmt.Sprint(timeout))
	}
	return path + "?" + form(kv...)
}

// poll sends one long-poll and decodes a 200 answer or fails the case.
func (t *caseT) poll(qname, tick string, timeout int) pollAnswer {
	start := time.Now()
	wait := defaultWait
	if timeout > 0 {
		wait += time.Duration(timeout) * time.Second
	} else if timeout < 0 {
		wait += 30 * time.Second
	}
	r := t.doWithin(wait, "GET", readPath("/read", qname, tick, timeout), "")
	return t.decodePoll(r, time.Since(start))
}

func (t *caseT) decodePoll(r *reply, took time.Duration) pollAnswer {
	m := t.wantOK(r, "read")
	a := pollAnswer{raw: r, took: took, fields: m}
	if g, ok := m["gap"]; ok {
		b, isBool := g.(bool)
		if !isBool {
			t.Fatalf(`"gap" must be a boolean: %s`, r)
		}
		a.gap = b
	}
	list, ok := m["messages"].([]any)
	if !ok {
		t.Fatalf(`read answer has no "messages" array: %s`, r)
	}
	for _, e := range list {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			t.Fatalf(`each message must be ["<tick>","<msg>"]: %s`, r)
		}
		tk, ok1 := pair[0].(string)
		ms, ok2 := pair[1].(string)
		if !ok1 || !ok2 {
			t.Fatalf(`each message must be two strings: %s`, r)
		}
		a.messages = append(a.messages, ezItem{tick: tk, msg: ms})
	}
	return a
}

// readAll follows the queue from tick with timeout=0 polls until an empty
// answer, returning every message and whether the first answer had a gap.
func (t *caseT) readAll(qname, tick string) ([]ezItem, bool) {
	var all []ezItem
	first := true
	gap := false
	for range 10000 {
		a := t.poll(qname, tick, 0)
		if first {
			gap = a.gap
			first = false
		} else if a.gap {
			t.Fatalf("a continuation read from tick %q reported a gap", tick)
		}
		if len(a.messages) == 0 {
			return all, gap
		}
		for _, m := range a.messages {
			if tick != "" && m.tick == tick {
				t.Fatalf("a read after tick %q returned that message again", tick)
			}
		}
		all = append(all, a.messages...)
		tick = a.messages[len(a.messages)-1].tick
	}
	t.Fatalf("read of %s never ended", qname)
	return nil, false
}

// sameItems compares received messages with the expected ticks and msgs.
func sameItems(got []ezItem, msgs, ticks []string) error {
	if len(got) != len(ticks) {
		return fmt.Errorf("got %d messages, want %d (first got %v)", len(got), len(ticks), firstItems(got))
	}
	for i := range got {
		if got[i].gap || got[i].tick != ticks[i] || got[i].msg != msgs[i] {
			return fmt.Errorf("message %d is %v, want [%q,%q]", i, got[i], ticks[i], msgs[i])
		}
	}
	return nil
}

func firstItems(items []ezItem) []ezItem {
	return items[:min(len(items), 5)]
}

// sseText is what an SSE client makes of msg (EZ-R-09): CR, LF and CRLF
// each end a data: line, and the lines are joined by LF, so a bare CR
// arrives as LF. WebSocket and long-poll answers carry msg as it is.
func sseText(msg string) string {
	return strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\r", "\n")
}

// multiLine are messages whose lines end in every way SSE knows (CR, LF,
// CRLF, in runs, first and last): each multi-line case sends them all.
var multiLine = []string{
	"cr\rlf\ncrlf\r\nend",
	"\r", "\n", "\r\n",
	"a\r\rb", "a\n\rb", "a\r\n\r\nb",
	"\r\nlead", "trail\r",
}

// kept is an open EZComet reader or Cometify listener a case keeps while
// it does something else: a WebSocket, an SSE stream, or a long-poll that
// waits. Sentinels (watch) and A-04's revocation checks use it.
type kept struct {
	what string
	via  string
	cf   bool    // Cometify: resume points are not deliveries
	acct Account // a Cometify listener's account
	ws   *wsConn
	sse  *sseConn
	poll *wireConn
}

// keepEZ opens an EZComet reader of q after tick (which must be q's newest,
// so that it waits).
func (t *caseT) keepEZ(via, q, tick string) *kept {
	h := &kept{what: fmt.Sprintf("EZComet %s reader of %s", via, q), via: via}
	switch via {
	case viaWS:
		h.ws = t.mustWS(readPath("/read/ws", q, tick, -1))
		h.ws.start()
	case viaSSE:
		h.sse = t.mustSSE(readPath("/read/sse", q, tick, -1))
		h.sse.start()
	default:
		h.poll = t.waitingPoll(readPath("/read", q, tick, 120), h.what)
	}
	return h
}

// keepCF opens a plain Cometify listener of x for a, with secureKey when
// it is not empty.
func (t *caseT) keepCF(via string, a Account, x, secureKey string) *kept {
	kv := []string{"", ""}
	keyed := ""
	if secureKey != "" {
		kv, keyed = []string{"secureKey", secureKey}, " with a secureKey"
	}
	h := &kept{what: fmt.Sprintf("Cometify %s listener of %s's %s%s", via, a.User, x, keyed), via: via, cf: true, acct: a}
	switch via {
	case viaWS:
		h.ws = t.mustWS(listenerPath(a, via, x, kv...))
		h.ws.start()
	case viaSSE:
		h.sse = t.mustSSE(listenerPath(a, via, x, kv...))
		h.sse.start()
	default:
		h.poll = t.waitingPoll(listenerPath(a, via, x, append(kv, "timeout", "120")...), h.what)
	}
	return h
}

// watch holds a case's sentinels: readers or listeners on the names next
// to the ones it delivers to (a prefix, an extension, another account's
// same name), which must get nothing. quiet checks them all at once.
type watch struct {
	t    *caseT
	list []*kept
}

func (w *watch) quiet() {
	var fns []func()
	for _, h := range w.list {
		fns = append(fns, func() { h.quiet(w.t) })
	}
	w.t.parallel(fns...)
}

// sentinelGrace is how long quiet waits for a delivery still in flight.
const sentinelGrace = 300 * time.Millisecond

// quiet fails the case if h got a message, a push, a gap signal or an
// answer, or was closed.
func (h *kept) quiet(t *caseT) {
	switch {
	case h.poll != nil:
		r, err := h.poll.readErr("GET", sentinelGrace)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		if err != nil {
			t.Fatalf("%s: its waiting poll ended: %v", h.what, err)
		}
		t.Fatalf("%s: its waiting poll was answered: %s", h.what, r)
	case h.ws != nil:
		for {
			f, ok := h.ws.next(sentinelGrace)
			if !ok {
				return
			}
			if f.err != nil || f.op == ws.OpClose {
				t.Fatalf("%s: closed (%v, close %d %q)", h.what, f.err, f.code, f.reason)
			}
			if h.cf {
				if it, known := t.decodeCFObject(h.what, f.payload); !known || it.kind == cfSince {
					continue
				}
			}
			t.Fatalf("%s: got %q", h.what, clip(f.payload))
		}
	default:
		for {
			e, ok := h.sse.nextEvent(sentinelGrace)
			if !ok {
				return
			}
			if e.err != nil {
				t.Fatalf("%s: stream ended: %v", h.what, e.err)
			}
			if h.cf && !e.hasData {
				continue
			}
			t.Fatalf("%s: got %s", h.what, e.describe())
		}
	}
}

// ezNeighbours are the channels next to q: a prefix, an extension, and
// the second account's channel of the same name (when there is one), each
// with the key that writes it.
func (t *caseT) ezNeighbours(q string) (names, keys []string) {
	names = []string{q[:len(q)-1], q + "x"}
	keys = []string{t.cfg.Account.Key, t.cfg.Account.Key}
	if a2 := t.cfg.Account2; a2.Key != "" {
		if user, ch, ok := strings.Cut(q, "-"); ok && user == t.cfg.Account.User {
			names, keys = append(names, a2.User+"-"+ch), append(keys, a2.Key)
		}
	} else {
		t.Notef("another account's channel of the same name gets nothing (pass --user2/--key2)")
	}
	return names, keys
}

// watchEZ writes one message to each neighbour of each q (so that a read
// of q that strays into a neighbour shows it), then opens a reader on each
// neighbour on every transport, from a client IP of its own, waiting after
// that message: none may get anything while the case writes to q.
func (t *caseT) watchEZ(qs ...string) *watch {
	w := &watch{t: t}
	src, _ := t.freshOrSame()
	for _, q := range qs {
		names, keys := t.ezNeighbours(q)
		for i, n := range names {
			tick := "nb-" + randHex(6)
			t.wantOK(t.write("api_key", keys[i], "qname", n, "msg", "neighbour of "+q, "tick", tick), "write to "+n+", a neighbour of "+q)
			for _, via := range ezTransports {
				h := src.keepEZ(via, n, tick)
				h.what += " (a neighbour of " + q + ")"
				w.list = append(w.list, h)
			}
		}
	}
	return w
}

// waitingPoll sends a long-poll that must still be waiting 300 ms later
// and returns its connection.
func (t *caseT) waitingPoll(path, what string) *wireConn {
	c := t.dial()
	c.send(t.request("GET", path, ""))
	r, err := c.readErr("GET", 300*time.Millisecond)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return c
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Fatalf("%s: want a poll that waits, got %s at once", what, r)
	return nil
}
