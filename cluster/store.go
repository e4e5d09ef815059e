package cluster

import (
	"fmt"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// StoreBackend is what the store node serves: *persist.Store.
type StoreBackend interface {
	EZWriteTo(persist.EZWrite, persist.WriteCompletion)
	CFPushTo(persist.CFPush, persist.CFCompletion)
	EZRead(qname string, tick []byte, lim persist.ReadLimit) (persist.ReadResult, error)
	EZReadAfter(qname string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error)
	CFRead(topic []byte, after uint64, notBefore int64, lim persist.ReadLimit) (persist.CFReadResult, error)
	Accounts() []persist.Account
	EZChannels(username string) []persist.ChannelStat
}

// readOverhead is room kept in a read answer's NATS message for what is
// not tick or body bytes: the frame header and up to ~30 bytes of varints
// per message.
const readOverhead = 8<<10 + maxWireMessages*32

// storeReaders is how many goroutines answer reads on the store node,
// and storeReadQueue how many reads may wait for one before the NATS
// subscription goroutine waits too (and NATS's pending limit, past it,
// drops requests: their senders answer 503 at their deadline).
const (
	storeReaders   = 8
	storeReadQueue = 4096
)

// ServeStore makes this Link's node the store node: forwarded writes and
// pushes go to b, and are answered when b completes them (after their
// group is synced: an answer is never an ok the disk does not hold);
// reads are answered from b by a few reader goroutines. One store node
// serves a service: call it on one Link only. Requests are taken on one
// NATS subscription goroutine, which answers pings itself and hands reads
// to the readers: a burst of reads (every light node's long-polls
// re-issued after one push) neither waits in one line nor holds up the
// pings that light nodes' health rests on, nor forwarded writes.
func (l *Link) ServeStore(b StoreBackend) error {
	reads := make(chan storeRead, storeReadQueue)
	for range storeReaders {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case r := <-reads:
					l.serveRead(b, r.reply, &r.req)
				case <-l.done:
					return
				}
			}
		}()
	}
	sub, err := l.nc.Subscribe(l.storeSubject(), func(m *nats.Msg) {
		if len(m.Data) < 2 || m.Data[1] != frameRead || m.Reply == "" {
			l.serve(b, m)
			return
		}
		r, err := decodeReadRequest(m.Data)
		if err != nil {
			l.opts.Logf("cluster: store node: %v", err)
			return
		}
		if r.Name == pingName {
			l.serveRead(b, m.Reply, &r)
			return
		}
		select {
		case reads <- storeRead{reply: m.Reply, req: r}:
		case <-l.done:
		}
	})
	if err != nil {
		return fmt.Errorf("cluster: serve store: %w", err)
	}
	l.storeSub = sub
	// Answer nothing as the store until NATS has the subscription, so a
	// light node that starts next sees a store node.
	if err := l.nc.Flush(); err != nil {
		return fmt.Errorf("cluster: serve store: %w", err)
	}
	return nil
}

// serve answers one request. A frame that does not decode gets no answer:
// the sender times out with 503, and nothing a well-behaved node sends
// gets there.
func (l *Link) serve(b StoreBackend, m *nats.Msg) {
	if len(m.Data) < 2 || m.Reply == "" {
		return
	}
	if m.Data[1] == frameAccounts {
		frame, err := appendAccounts(nil, b.Accounts())
		if err != nil {
			l.opts.Logf("cluster: store node: %v", err)
			return
		}
		l.answer(m.Reply, frame)
		return
	}
	if m.Data[1] == frameChannels {
		name, err := decodeChannelsRequest(m.Data)
		if err == nil {
			var frame []byte
			if frame, err = appendChannels(nil, b.EZChannels(name)); err == nil {
				l.answer(m.Reply, frame)
				return
			}
		}
		l.opts.Logf("cluster: store node: %v", err)
		return
	}
	if m.Data[1] == frameRead {
		r, err := decodeReadRequest(m.Data)
		if err != nil {
			l.opts.Logf("cluster: store node: %v", err)
			return
		}
		l.serveRead(b, m.Reply, &r)
		return
	}
	r, err := decodeRequest(m.Data)
	if err != nil {
		l.opts.Logf("cluster: store node: %v", err)
		return
	}
	c := &forwarded{l: l, reply: m.Reply}
	if r.Op == OpEZWrite {
		b.EZWriteTo(r.EZ, c)
	} else {
		b.CFPushTo(r.CF, c)
	}
}

// storeRead is a read request waiting for a store-node reader. Its
// byte strings alias the NATS message, which nothing else holds.
type storeRead struct {
	reply string
	req   ReadRequest
}

// serveRead answers one read request.
func (l *Link) serveRead(b StoreBackend, reply string, r *ReadRequest) {
	a := l.read(b, r)
	l.answer(reply, appendReadAnswer(nil, &a))
}

// read runs r against b within what one NATS message holds.
func (l *Link) read(b StoreBackend, r *ReadRequest) ReadAnswer {
	lim := r.Limit
	if lim.Messages <= 0 || lim.Messages > maxWireMessages {
		lim.Messages = maxWireMessages
	}
	room := max(int(l.nc.MaxPayload())-readOverhead, 64<<10)
	if lim.Bytes <= 0 || lim.Bytes > room {
		lim.Bytes = room
	}
	var a ReadAnswer
	if r.Kind == CF {
		res, err := b.CFRead([]byte(r.Name), r.After, r.NotBefore, lim)
		a = ReadAnswer{Cursor: res.Cursor, Last: res.Last, Gap: res.Gap, More: res.More, Err: err}
		a.Messages = make([]Message, len(res.Pushes))
		for i, p := range res.Pushes {
			a.Messages[i] = Message{Seq: p.ID, Time: p.Time, Secret: p.Secret, Body: p.Text}
		}
		return a
	}
	var res persist.ReadResult
	var err error
	if r.ByTick {
		res, err = b.EZRead(r.Name, r.Tick, lim)
	} else {
		res, err = b.EZReadAfter(r.Name, r.After, lim)
	}
	a = ReadAnswer{Cursor: res.Cursor, Gap: res.Gap, More: res.More, Err: err}
	a.Messages = make([]Message, len(res.Messages))
	for i, m := range res.Messages {
		a.Messages[i] = Message{Seq: m.Seq, Time: m.Time, Tick: m.Tick, Body: m.Body}
	}
	return a
}

// answer queues an answer frame for a requester's inbox. When the
// outbox is full the requester times out and answers 503; the write, if
// any, stands, and a re-send is idempotent.
func (l *Link) answer(reply string, frame []byte) { l.send(reply, "", frame) }

// forwarded completes a forwarded write or push: persist calls it on its
// committer goroutine once the group is synced; the answer goes through
// the outbox, so the committer never waits for the network.
type forwarded struct {
	l     *Link
	reply string
}

func (f *forwarded) WriteDone(r persist.EZWriteResult) {
	f.l.answer(f.reply, appendAnswer(nil, OpEZWrite, &Answer{EZ: r}))
}

func (f *forwarded) CFPushDone(r persist.CFPushResult) {
	f.l.answer(f.reply, appendAnswer(nil, OpCFPush, &Answer{CF: r}))
}
