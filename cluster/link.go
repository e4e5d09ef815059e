package cluster

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// LinkOptions configures a Link. Zero fields take their documented
// defaults.
type LinkOptions struct {
	// URL is the NATS server (or a comma-separated list of a cluster's
	// servers). Required.
	URL string
	// Name identifies the connection in NATS monitoring. Default "halley".
	Name string
	// Prefix starts every subject the service uses, so several services
	// can share one NATS. Default "halley".
	Prefix string
	// RequestTimeout bounds a Forward or Read whose context has no
	// deadline. Default 2 s: past it the write is answered 503.
	RequestTimeout time.Duration
	// QueueLen is how many received deliveries may wait for the dispatch
	// goroutine. When it is full, NATS drops the message and the channel
	// is repaired (never a blocked NATS reader). Default 16384.
	QueueLen int
	// OutboxLen is how many outgoing messages (deliveries, answers,
	// forwarded writes) may wait for the publisher goroutine; past it a
	// message is dropped: a forwarded write is refused at once (503), an
	// answer times out at its requester (503), and after dropped
	// deliveries every node is told to repair. Default 16384: the
	// publisher drains it at NATS's speed (about a million messages a
	// second), so it holds a burst, not a backlog, and a light node pays
	// 1 MiB for it rather than 4.
	OutboxLen int
	// ReconnectWait is the pause between reconnect attempts; they never
	// stop while the Link is open. Default 250 ms.
	ReconnectWait time.Duration
	// OnDelivery receives each delivery of a followed channel that is
	// next in order: once, in order per channel. It runs on the Link's
	// dispatch goroutine and must not block (hand the message to the
	// event loops). The Delivery's slices are the callee's to keep.
	OnDelivery func(Delivery)
	// OnRepair says that kind/name missed something after seq after:
	// deliveries of it stop until the callee has read the store node
	// (Read with After = after), handed what it read to the loops and
	// called Repaired. Dispatch goroutine; must not block.
	OnRepair func(kind Kind, name string, after uint64)
	// AfterDeliveries, if set, runs on the dispatch goroutine after each
	// run of OnDelivery calls (every delivery waiting at that moment), so
	// that the callee can post one task per run rather than one per
	// message, as persist.Options.AfterBatch does after a group.
	AfterDeliveries func()
	// Logf receives connection events worth a human's attention.
	// Default log.Printf.
	Logf func(format string, args ...any)
}

// EnsureDefaults fills zero fields with their defaults.
func (o *LinkOptions) EnsureDefaults() {
	if o.Name == "" {
		o.Name = "halley"
	}
	if o.Prefix == "" {
		o.Prefix = "halley"
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.QueueLen == 0 {
		o.QueueLen = 16384
	}
	if o.OutboxLen == 0 {
		o.OutboxLen = 16384
	}
	if o.ReconnectWait == 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	if o.OnDelivery == nil {
		o.OnDelivery = func(Delivery) {}
	}
	if o.OnRepair == nil {
		o.OnRepair = func(Kind, string, uint64) {}
	}
	if o.AfterDeliveries == nil {
		o.AfterDeliveries = func() {}
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
}

// Validate reports options that cannot work.
func (o *LinkOptions) Validate() error {
	switch {
	case o.URL == "":
		return errors.New("cluster: no NATS URL")
	case o.RequestTimeout < 0 || o.ReconnectWait < 0:
		return errors.New("cluster: negative timeout")
	case o.QueueLen < 1 || o.OutboxLen < 1:
		return errors.New("cluster: queue length below 1")
	}
	return nil
}

// LinkStats are monotonic counters since Dial.
type LinkStats struct {
	Delivered  uint64 // deliveries passed to OnDelivery
	Duplicates uint64 // deliveries at or below the channel's last seq, ignored
	Gaps       uint64 // repairs reported to OnRepair
	Dropped    uint64 // slow-consumer episodes: NATS dropped messages of a subscription whose queue was full
	Reconnects uint64
	BadFrames  uint64 // deliveries that did not decode
	OutDropped uint64 // outgoing messages dropped: outbox full, or NATS refused them
	// JoinedReads: reads answered by an identical read's request
	// (coalesce.go), not a request of their own.
	JoinedReads uint64
}

// Link is one node's connection to the service: forwarded writes and reads
// to the store node, and the committed deliveries of the channels this
// node follows. Its methods are safe from any goroutine unless they say
// otherwise.
type Link struct {
	opts LinkOptions
	nc   *nats.Conn
	in   chan *nats.Msg // deliveries from every followed subject
	out  chan outMsg    // to the publisher goroutine
	// resyncDue says deliveries were dropped from the outbox: the
	// publisher tells every node to repair once it has room.
	resyncDue atomic.Bool
	kick      chan struct{} // repairs are pending
	done      chan struct{}
	wg        sync.WaitGroup
	storeSub  *nats.Subscription

	mu      sync.Mutex
	follow  [3]map[string]*tracker // by Kind, then name
	subs    map[string]*subjectSub // by subject
	pending []chanKey              // repairs to report, in marking order
	// accountCaches refetch after a reconnect.
	accountCaches []*AccountCache

	// published is the store node's last published push id per CF topic:
	// the Prev of the topic's next delivery (EZ seqs need none: they are
	// contiguous). One entry per topic pushed since Dial, as persist keeps
	// one per topic. Only Publish touches it (one goroutine).
	published map[string]uint64

	// reads makes identical concurrent reads one request (coalesce.go).
	reads coalescer

	stats struct {
		delivered, duplicates, gaps, dropped, reconnects, badFrames, outDropped atomic.Uint64
	}
}

// chanKey names a channel or topic.
type chanKey struct {
	Kind Kind
	Name string
}

// tracker is a followed channel's state on a light node.
type tracker struct {
	key  chanKey
	refs int    // Subscribe calls not yet undone
	last uint64 // seq of the last delivery handed on (or repaired up to)
	// known is false while last is not known (Subscribe with
	// LastUnknown): the first delivery is taken as it comes.
	known bool
	subj  string
	state repairState
}

type repairState uint8

const (
	inOrder   repairState = iota
	repairing             // reported or about to be; deliveries are dropped until Repaired
	again                 // repairing, and marked again meanwhile: report once more after Repaired
)

// subjectSub is one NATS subscription; several channels share it only
// when their names hash alike.
type subjectSub struct {
	sub  *nats.Subscription
	keys int
}

// Dial connects to NATS. The Link reconnects by itself for as long as it
// is open; after each reconnect every followed channel is repaired.
func Dial(o LinkOptions) (*Link, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	l := &Link{
		opts:      o,
		in:        make(chan *nats.Msg, o.QueueLen),
		out:       make(chan outMsg, o.OutboxLen),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		subs:      make(map[string]*subjectSub),
		published: make(map[string]uint64),
	}
	l.reads.link = l
	for k := range l.follow {
		l.follow[k] = make(map[string]*tracker)
	}
	l.touchQueues()
	nc, err := nats.Connect(o.URL,
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(o.ReconnectWait),
		nats.ReconnectHandler(l.reconnected),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				o.Logf("cluster: NATS connection lost: %v", err)
			}
		}),
		nats.ErrorHandler(l.asyncError),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to NATS at %s: %w", o.URL, err)
	}
	l.nc = nc
	if err := l.subscribeResync(); err != nil {
		nc.Close()
		return nil, err
	}
	l.wg.Add(2)
	go l.dispatch()
	go l.publisher()
	return l, nil
}

// Close closes the connection and stops the Link's goroutines; no
// callback runs after it returns. What the outbox still holds is not
// sent: on a graceful stop, close the store first (its last answers go
// to the outbox), then Flush, then Close.
func (l *Link) Close() {
	l.nc.Close()
	close(l.done)
	l.wg.Wait()
}

// Stats returns the counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{
		Delivered:   l.stats.delivered.Load(),
		Duplicates:  l.stats.duplicates.Load(),
		Gaps:        l.stats.gaps.Load(),
		Dropped:     l.stats.dropped.Load(),
		Reconnects:  l.stats.reconnects.Load(),
		BadFrames:   l.stats.badFrames.Load(),
		OutDropped:  l.stats.outDropped.Load(),
		JoinedReads: l.reads.joinedReads(),
	}
}

// storeSubject carries forwarded writes, pushes and reads.
func (l *Link) storeSubject() string { return l.opts.Prefix + ".store" }

// subject is where kind/name's deliveries are published:
// prefix.d.<kind>.<fnv-64a of the name in hex>. A hash keeps subjects
// short and free of the characters NATS reserves ('.', '*', '>', spaces),
// which channel names may hold; two names that hash alike share a
// subject, and receivers tell them apart by the name in each delivery.
func (l *Link) subject(kind Kind, name []byte) string {
	h := uint64(fnvOffset)
	for _, c := range name {
		h = (h ^ uint64(c)) * fnvPrime
	}
	b := make([]byte, 0, len(l.opts.Prefix)+5+16)
	b = append(b, l.opts.Prefix...)
	b = append(b, ".d."...)
	b = append(b, "xec"[kind], '.')
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], h)
	return string(hex.AppendEncode(b, sum[:]))
}

// FNV-1a, 64 bits, inline: hash/fnv's hasher would be one more
// allocation per published message.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// unavailable is the error of a request the store node did not answer: it
// wraps persist.ErrStorage, so the protocol answers 503.
func unavailable(err error) error {
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w: cluster: no store node is serving: %w", persist.ErrStorage, err)
	}
	return fmt.Errorf("%w: cluster: store node did not answer: %w", persist.ErrStorage, err)
}

// request sends frame to the store node and returns its answer.
func (l *Link) request(ctx context.Context, frame []byte) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.opts.RequestTimeout)
		defer cancel()
	}
	m, err := l.nc.RequestWithContext(ctx, l.storeSubject(), frame)
	if err != nil {
		return nil, unavailable(err)
	}
	return m, nil
}

// Forward sends a write or push to the store node and waits for its
// outcome. The error is a transport failure (no store node, timeout,
// NATS down), wrapping persist.ErrStorage: the write may or may not have
// been made durable, so it is answered 503 and an idempotent re-send
// settles it. Otherwise the Answer holds exactly what persist answered.
// It blocks: call it off the event loops.
func (l *Link) Forward(ctx context.Context, r *Request) (Answer, error) {
	m, err := l.request(ctx, appendRequest(nil, r))
	if err != nil {
		return Answer{}, err
	}
	a, err := decodeAnswer(m.Data, r.Op)
	if err != nil {
		return Answer{}, fmt.Errorf("%w: cluster: forward: %w", persist.ErrStorage, err)
	}
	return a, nil
}

// Read asks the store node for a channel's messages after a resume point
// (to repair a gap, or to serve a resume on this node). Transport
// failures are as Forward's. Identical reads made at the same time share
// one request (coalescer): the answer's slices are read-only, and a read
// that joins another's request is bounded by that request's ctx. Blocks;
// off the event loops.
func (l *Link) Read(ctx context.Context, r *ReadRequest) (ReadAnswer, error) {
	return l.reads.do(ctx, r)
}

// readOnce is one read request to the store node.
func (l *Link) readOnce(ctx context.Context, r *ReadRequest) (ReadAnswer, error) {
	m, err := l.request(ctx, appendReadRequest(nil, r))
	if err != nil {
		return ReadAnswer{}, err
	}
	a, err := decodeReadAnswer(m.Data)
	if err != nil {
		return ReadAnswer{}, fmt.Errorf("%w: cluster: read: %w", persist.ErrStorage, err)
	}
	return a, a.Err
}

// Publish queues committed deliveries, each to be sent once to its
// channel's subject, in order: the store node calls it from one goroutine
// only (after each committed group), with each channel's deliveries in
// commit order. It fills Prev: Seq-1 for EZ, the last id published on the
// topic for CF (unknown for a topic's first push since this Link was
// dialled; receivers repair then). It never blocks: a delivery the outbox
// has no room for is dropped, and every node is then told to repair what
// it follows.
func (l *Link) Publish(ds []Delivery) {
	dropped := false
	for i := range ds {
		d := &ds[i]
		if d.Kind == EZ {
			d.Prev, d.PrevKnown = d.Seq-1, true
		} else {
			d.Prev, d.PrevKnown = l.published[string(d.Name)]
			l.published[string(d.Name)] = d.Seq
		}
		if !l.send(l.subject(d.Kind, d.Name), "", appendDelivery(nil, d)) {
			dropped = true
		}
	}
	if dropped {
		l.resyncDue.Store(true)
	}
}

// LastUnknown, given to Subscribe, says the caller does not know where
// its readers stand: the first delivery is handed on whatever came before
// it, and the tracker checks the order from there. The protocol's readers
// cover what lies before it: each reads the store node after subscribing
// (the SUB reaches NATS before the read request, both on this Link's one
// connection, so whatever the read does not return is published after
// NATS knows the subscription), and a reader that a delivery finds
// further behind reads what it missed.
const LastUnknown = ^uint64(0)

// Subscribe follows kind/name on this node from seq last (the channel's
// last seq the caller's readers already have, read from the store node,
// or LastUnknown): later deliveries go to OnDelivery, missed ones to
// OnRepair. Calls nest:
// each Subscribe needs one Unsubscribe, and a second Subscribe keeps the
// position the first one set. The subscription reaches NATS
// asynchronously; a message committed meanwhile shows as a gap and is
// repaired.
func (l *Link) Subscribe(kind Kind, name string, last uint64) error {
	if !kind.valid() {
		return fmt.Errorf("cluster: subscribe: kind %d", kind)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.follow[kind][name]; t != nil {
		t.refs++
		return nil
	}
	subj := l.subject(kind, []byte(name))
	s := l.subs[subj]
	if s == nil {
		sub, err := l.nc.ChanSubscribe(subj, l.in)
		if err != nil {
			return fmt.Errorf("cluster: subscribe %s: %w", name, err)
		}
		s = &subjectSub{sub: sub}
		l.subs[subj] = s
	}
	s.keys++
	t := &tracker{key: chanKey{kind, name}, refs: 1, last: last, subj: subj, known: true}
	if last == LastUnknown {
		t.last, t.known = 0, false
	}
	l.follow[kind][name] = t
	return nil
}

// Unsubscribe undoes one Subscribe; the last one stops following.
func (l *Link) Unsubscribe(kind Kind, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.follow[kind][name]
	if t == nil {
		return nil
	}
	if t.refs--; t.refs > 0 {
		return nil
	}
	delete(l.follow[kind], name)
	s := l.subs[t.subj]
	if s.keys--; s.keys > 0 {
		return nil
	}
	delete(l.subs, t.subj)
	if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("cluster: unsubscribe %s: %w", name, err)
	}
	return nil
}

// Repaired says the repair of kind/name that OnRepair asked for is done:
// its readers have everything up to cursor, and deliveries after it flow
// again. If the channel was marked again meanwhile (a reconnect), it is
// reported once more from cursor.
func (l *Link) Repaired(kind Kind, name string, cursor uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.follow[kind][name]
	if t == nil || t.state == inOrder {
		return
	}
	t.last = max(t.last, cursor)
	t.known = true
	if t.state == again {
		t.state = repairing
		l.pending = append(l.pending, t.key)
		l.kickDispatch()
		return
	}
	t.state = inOrder
}

// markLocked puts t in repair; the dispatch goroutine reports it. l.mu
// held.
func (l *Link) markLocked(t *tracker) {
	switch t.state {
	case inOrder:
		t.state = repairing
		l.pending = append(l.pending, t.key)
		l.kickDispatch()
	case repairing:
		t.state = again
	}
}

func (l *Link) kickDispatch() {
	select {
	case l.kick <- struct{}{}:
	default: // a kick is already pending and will see l.pending
	}
}

// reconnected runs on the NATS client's callback goroutine after a
// reconnect: whatever was published while the link was down is lost to
// core NATS, so every followed channel is repaired.
func (l *Link) reconnected(*nats.Conn) {
	l.stats.reconnects.Add(1)
	l.opts.Logf("cluster: NATS reconnected; repairing every followed channel")
	l.repairAll()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.accountCaches {
		c.refetch()
	}
}

// repairAll puts every followed channel in repair.
func (l *Link) repairAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.follow {
		for _, t := range m {
			l.markLocked(t)
		}
	}
}

// asyncError runs on the NATS client's callback goroutine. A slow
// consumer error means the delivery queue was full and NATS dropped a
// message of sub: its channels are repaired.
func (l *Link) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrSlowConsumer) || sub == nil {
		l.opts.Logf("cluster: NATS: %v", err)
		return
	}
	l.stats.dropped.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.follow {
		for _, t := range m {
			if t.subj == sub.Subject {
				l.markLocked(t)
			}
		}
	}
}

// dispatch is the one goroutine that runs OnDelivery and OnRepair, so
// that a repair is reported after every delivery handed on before it.
func (l *Link) dispatch() {
	defer l.wg.Done()
	for {
		select {
		case m := <-l.in:
			l.deliver(m)
			// Hand on every delivery already waiting, then say the run
			// is over; bounded so that repairs are reported meanwhile.
		drain:
			for range 1024 {
				select {
				case m := <-l.in:
					l.deliver(m)
				default:
					break drain
				}
			}
			l.opts.AfterDeliveries()
		case <-l.kick:
			l.reportRepairs()
		case <-l.done:
			return
		}
	}
}

// deliver checks one received frame against its channel's tracker and
// hands it on when it is next in order.
func (l *Link) deliver(m *nats.Msg) {
	d, err := decodeDelivery(m.Data)
	if err != nil {
		l.stats.badFrames.Add(1)
		return
	}
	l.mu.Lock()
	t := l.follow[d.Kind][string(d.Name)]
	switch {
	case t == nil: // no longer followed, or a name sharing the subject
		l.mu.Unlock()
		return
	case t.state != inOrder: // the repair read will return it
		l.mu.Unlock()
		return
	case !t.known: // the first delivery since Subscribe(LastUnknown)
		t.known = true
	case d.Seq <= t.last:
		l.mu.Unlock()
		l.stats.duplicates.Add(1)
		return
	case !d.PrevKnown || d.Prev != t.last:
		l.markLocked(t)
		l.mu.Unlock()
		l.reportRepairs()
		return
	}
	t.last = d.Seq
	l.mu.Unlock()
	l.stats.delivered.Add(1)
	l.opts.OnDelivery(d)
}

// reportRepairs calls OnRepair for each marked channel still followed.
func (l *Link) reportRepairs() {
	l.mu.Lock()
	keys := l.pending
	l.pending = nil
	type report struct {
		key   chanKey
		after uint64
	}
	reports := make([]report, 0, len(keys))
	for _, k := range keys {
		if t := l.follow[k.Kind][k.Name]; t != nil && t.state != inOrder {
			reports = append(reports, report{k, t.last})
		}
	}
	l.mu.Unlock()
	for _, r := range reports {
		l.stats.gaps.Add(1)
		l.opts.OnRepair(r.key.Kind, r.key.Name, r.after)
	}
}

// Last is the seq of the last delivery of kind/name handed on, while this
// node follows it in order from a known point; ok is false otherwise.
func (l *Link) Last(kind Kind, name string) (last uint64, ok bool) {
	if !kind.valid() {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.follow[kind][name]
	if t == nil || !t.known || t.state != inOrder {
		return 0, false
	}
	return t.last, true
}

// Connected reports whether the NATS connection is up.
func (l *Link) Connected() bool { return l.nc.IsConnected() }

// pingName is the topic a Ping reads: no Cometify topic (they start with
// "<username>/"), and the store node answers it ahead of other reads.
const pingName = "\x00ping"

// Ping asks the store node for an empty read and reports whether it
// answered: nil, or an error wrapping persist.ErrStorage (no store node,
// timeout, NATS down). A light node's /healthz rests on it.
func (l *Link) Ping(ctx context.Context) error {
	r := ReadRequest{Kind: CF, Name: pingName, Limit: persist.ReadLimit{Messages: 1, Bytes: 1}}
	_, err := l.request(ctx, appendReadRequest(nil, &r))
	return err
}

// Following reports whether this node follows kind/name.
func (l *Link) Following(kind Kind, name string) bool {
	if !kind.valid() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.follow[kind][name] != nil
}

// touchQueues fills and empties both queues once, before any traffic, so
// that their memory is resident from the start: a node's fixed cost shows
// when it starts, and its memory does not creep up with traffic as a
// ring buffer's pages are reached one by one (which a memory-per-
// connection measure would charge to the connections).
func (l *Link) touchQueues() {
	for range cap(l.in) {
		l.in <- nil
	}
	for range cap(l.in) {
		<-l.in
	}
	for range cap(l.out) {
		l.out <- outMsg{}
	}
	for range cap(l.out) {
		<-l.out
	}
}
