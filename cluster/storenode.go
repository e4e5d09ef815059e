package cluster

import (
	"sync"

	"github.com/halleypush/halley/persist"
)

// StoreNode is the store node's side of the service: its *persist.Store
// with the writes and pushes of every node passing through, so that each
// committed message is published once to the light nodes (Link.Publish)
// and the ones forwarded from light nodes also reach this node's own
// readers.
//
// Give StoreNode to the protocol as its store (it has *persist.Store's
// methods: the embedded Store's, and EZWriteTo / CFPushTo that note what
// commits), call Serve once the protocol can take deliveries, and call
// AfterBatch from persist.Options.AfterBatch after the protocol's own
// AfterBatch: the group's deliveries go out in commit order from the
// store's syncer goroutine, which is what Publish asks.
type StoreNode struct {
	*persist.Store
	link *Link
	// local hands a message forwarded by a light node to this node's
	// own readers, in commit order, on the syncer goroutine (a write taken
	// here reaches them through its own completion).
	local func(d *Delivery)

	mu      sync.Mutex
	pending []Delivery // committed since the last AfterBatch, commit order
}

// NewStoreNode wraps s for link; local receives every committed message
// a light node forwarded (see StoreNode). Nothing is served until Serve.
func NewStoreNode(s *persist.Store, link *Link, local func(d *Delivery)) *StoreNode {
	if local == nil {
		local = func(*Delivery) {}
	}
	return &StoreNode{Store: s, link: link, local: local}
}

// Serve answers the light nodes' forwarded writes, pushes and reads.
func (n *StoreNode) Serve() error { return n.link.ServeStore(forwardedBackend{n}) }

// EZWriteTo is persist's, noting the message for Publish once committed.
func (n *StoreNode) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	n.Store.EZWriteTo(w, &notedWrite{n: n, w: w, done: done})
}

// CFPushTo is persist's, noting the push for Publish once committed.
func (n *StoreNode) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	n.Store.CFPushTo(p, &notedPush{n: n, p: p, done: done})
}

// AfterBatch publishes the messages of the group just committed; call it
// from persist.Options.AfterBatch (the syncer goroutine).
func (n *StoreNode) AfterBatch() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending) == 0 {
		return
	}
	n.link.Publish(n.pending) // encodes each delivery before returning
	clear(n.pending)
	n.pending = n.pending[:0]
}

// AccountChanged tells the light nodes that username's account changed;
// call it from persist.Options.OnAccountChange (the change is durable).
func (n *StoreNode) AccountChanged(username string) { n.link.PublishAccountChange(username) }

// note queues d for the next AfterBatch and, when a light node forwarded
// it, hands it to this node's readers.
func (n *StoreNode) note(d Delivery, forwarded bool) {
	n.mu.Lock()
	n.pending = append(n.pending, d)
	n.mu.Unlock()
	if forwarded {
		n.local(&d)
	}
}

// notedWrite completes an EZ write for its writer after noting it.
type notedWrite struct {
	n         *StoreNode
	w         persist.EZWrite
	done      persist.WriteCompletion
	forwarded bool
}

func (c *notedWrite) WriteDone(r persist.EZWriteResult) {
	if r.Err == nil && !r.Duplicate && !c.w.Flush {
		c.n.note(Delivery{Kind: EZ, Name: []byte(c.w.QName), Seq: r.Msg.Seq, Time: r.Msg.Time,
			Tick: c.w.Tick, Body: c.w.Body}, c.forwarded)
	}
	c.done.WriteDone(r)
}

// notedPush completes a CF push for its pusher after noting it.
type notedPush struct {
	n         *StoreNode
	p         persist.CFPush
	done      persist.CFCompletion
	forwarded bool
}

func (c *notedPush) CFPushDone(r persist.CFPushResult) {
	if r.Err == nil && !r.Duplicate {
		c.n.note(Delivery{Kind: CF, Name: []byte(c.p.Topic), Seq: r.Msg.ID, Time: r.Msg.Time,
			Secret: c.p.Secret, Body: c.p.Text}, c.forwarded)
	}
	c.done.CFPushDone(r)
}

// forwardedBackend is what ServeStore serves: the store, with forwarded
// writes and pushes noted as forwarded.
type forwardedBackend struct{ n *StoreNode }

func (b forwardedBackend) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	b.n.Store.EZWriteTo(w, &notedWrite{n: b.n, w: w, done: done, forwarded: true})
}

func (b forwardedBackend) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	b.n.Store.CFPushTo(p, &notedPush{n: b.n, p: p, done: done, forwarded: true})
}

func (b forwardedBackend) EZRead(qname string, tick []byte, lim persist.ReadLimit) (persist.ReadResult, error) {
	return b.n.Store.EZRead(qname, tick, lim)
}

func (b forwardedBackend) EZReadAfter(qname string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error) {
	return b.n.Store.EZReadAfter(qname, after, lim)
}

func (b forwardedBackend) CFRead(topic []byte, after uint64, notBefore int64, lim persist.ReadLimit) (persist.CFReadResult, error) {
	return b.n.Store.CFRead(topic, after, notBefore, lim)
}

func (b forwardedBackend) Accounts() []persist.Account { return b.n.Store.Accounts() }

func (b forwardedBackend) EZChannels(username string) []persist.ChannelStat {
	return b.n.Store.EZChannels(username)
}
