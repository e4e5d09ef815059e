package protocol

import (
	"strings"

	"github.com/halleypush/halley/persist"
)

// Messages committed by another node's store (issue 17, docs/cluster.md)
// reach this node's readers exactly as a local committed group's do: each
// is added to the group being gathered (fanout.go), and AfterBatch posts
// it, one task per loop with subscribers. A light node calls
// DeliverEZ / DeliverCF for each delivery the store node published (in
// commit order per channel, once: the cluster Link's tracker sees to it)
// and for each message a repair read returned, then AfterBatch after the
// run. The store node calls them, on its syncer goroutine between its
// group's completions, for the messages light nodes forwarded to it.
//
// A reader that stands before a delivery gets it; one further behind
// reads what it missed from the store, and a repeated message finds the
// reader's cursor past it, so the callers need not deduplicate per
// reader (ezindex.go, cfindex.go).

// DeliverEZ adds an EZComet message of qname committed elsewhere to the
// current group. tick and body are kept (never modified) until every
// loop has run the group. Safe from any goroutine.
func (a *API) DeliverEZ(qname string, seq uint64, tick, body []byte) {
	a.deliverCommitted(newDelivery(qname, persist.Message{Seq: seq, Tick: tick, Body: body}))
}

// DeliverCF adds a Cometify push of topic ("<username>/<identifier>")
// committed elsewhere to the current group; text is kept as DeliverEZ
// keeps body. Safe from any goroutine.
func (a *API) DeliverCF(topic string, id uint64, secret bool, text []byte) {
	i := strings.IndexByte(topic, '/')
	if i < 0 {
		return // not a topic the protocol makes
	}
	d := &cfDelivery{topic: topic, name: topic[i+1:], id: id, secret: secret, text: text}
	d.reserve(nil)
	a.deliverCommitted(d)
}

func (a *API) deliverCommitted(d fanout) {
	f := &a.fan
	f.mu.Lock()
	if f.cur == nil {
		f.cur = f.get(a)
	}
	f.cur.deliveries = append(f.cur.deliveries, d)
	f.mu.Unlock()
}
