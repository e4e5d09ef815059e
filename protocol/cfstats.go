package protocol

import (
	"bytes"
	"crypto/subtle"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/halleypush/halley/engine"
)

// serveStats handles GET /{apiKey}/stats (SPEC X-03): the account's live
// listeners per identifier, its queued EZComet messages per channel and
// its busiest client IPs.
func (a *API) serveStats(c engine.Conn, r *engine.Request, key []byte) {
	if !isGet(r) {
		a.replyError(c, nil, errMethod)
		return
	}
	acct, ok := a.store.AccountByCFKey(key)
	if !ok {
		a.replyError(c, nil, errUnknownKey)
		return
	}
	var auth []byte
	if r.Header != nil {
		auth = r.Header.Peek("Authorization")
	}
	const bearer = "bearer "
	if len(auth) <= len(bearer) || !bytes.EqualFold(auth[:len(bearer)], []byte(bearer)) {
		a.replyError(c, nil, errMissingAuth)
		return
	}
	given := bytes.TrimSpace(auth[len(bearer):])
	if subtle.ConstantTimeCompare(given, []byte(acct.APISecret)) != 1 {
		a.replyError(c, nil, errBadAuth)
		return
	}
	op := &statsOp{api: a, conn: c, user: acct.Username, acctID: acct.ID, listeners: make(map[string]int)}
	op.pending.Store(int32(a.loops.NumLoops()))
	// Each loop counts its own index; the last to finish answers on the
	// asker's loop. No loop waits for another.
	a.loops.Broadcast(op.count)
}

// statsOp gathers X-03's listener counts from every loop, then renders
// the answer on a reader (readers.go): the account's channels are a walk
// of the store's channel table, which a loop does not wait for.
type statsOp struct {
	api       *API
	conn      engine.Conn
	user      string
	acctID    uint64 // the incarnation asked about: its listener slots
	pending   atomic.Int32
	mu        sync.Mutex
	listeners map[string]int
	body      []byte // the answer, rendered by read
}

func (op *statsOp) count(loop int) {
	ls := op.api.state[loop]
	prefix := op.user + "/"
	op.mu.Lock()
	for topic, ts := range ls.cfTopics {
		if len(ts.list) > 0 && strings.HasPrefix(topic, prefix) {
			op.listeners[topic[len(prefix):]] += len(ts.list)
		}
	}
	op.mu.Unlock()
	if op.pending.Add(-1) == 0 && !op.api.submitRead(op) {
		op.api.loops.Post(op.conn.Loop(), op.refuse)
	}
}

func (op *statsOp) loop() int { return op.conn.Loop() }

// refuse answers 503 when the reader pool's queue is full.
func (op *statsOp) refuse() { op.api.replyError(op.conn, nil, errStorage) }

// Run implements engine.Task: the answer, on the asker's loop.
func (op *statsOp) Run(int) {
	if op.conn.Alive() {
		op.api.reply(op.conn, nil, op.body)
	}
}

// read renders the answer, on a reader; every loop has counted.
func (op *statsOp) read() {
	a := op.api
	op.mu.Lock()
	defer op.mu.Unlock()
	names := make([]string, 0, len(op.listeners))
	total := 0
	for n, v := range op.listeners {
		names = append(names, n)
		total += v
	}
	sort.Strings(names)
	b := []byte(`{"code":"ok","listeners":{`)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, []byte(n))
		b = append(b, ':')
		b = appendInt(b, int64(op.listeners[n]))
	}
	b = append(b, `},"listeners_total":`...)
	b = appendInt(b, int64(total))
	b = append(b, `,"channels":{`...)
	for i, ch := range a.store.EZChannels(op.user) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, []byte(ch.QName))
		b = append(b, ':')
		b = appendInt(b, int64(ch.Queued))
	}
	b = append(b, `},"client_ips":[`...)
	ips, _ := a.cap.busiest(op.acctID, 10)
	for i, ip := range ips {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ip":"`...)
		b = ip.IP.AppendTo(b)
		b = append(b, `","listeners":`...)
		b = appendInt(b, int64(ip.Listeners))
		b = append(b, '}')
	}
	op.body = append(b, "]}"...)
}
