package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// Forwarder gives a light node persist's write API over NATS: EZWriteTo
// and CFPushTo with persist's contract, so the protocol can take it where
// it takes a *persist.Store.
//
//   - They never block: the request goes through the Link's outbox. One
//     that cannot be sent (outbox full, Forwarder closed) completes on the
//     caller's goroutine, before the call returns, with an error wrapping
//     persist.ErrStorage (503), as persist refuses a write it cannot queue.
//   - Every other completion runs on the Forwarder's one goroutine, never
//     concurrently, with the store node's outcome (sentinel errors
//     included), or with an error wrapping persist.ErrStorage when the
//     store node did not answer within LinkOptions.RequestTimeout or no
//     store node is serving. Answers come in the store node's acceptance
//     order; a request that times out completes at its deadline.
//   - afterBatch, if set, runs on that goroutine after each run of
//     completions (every answer waiting at that moment), as
//     persist.Options.AfterBatch does after a group.
//
// No goroutine and no timer per request: one reply subscription, and one
// ticker sweeps deadlines.
type Forwarder struct {
	// DeliveredByLink, set before the first request, marks every
	// accepted answer Duplicate: on a light node a message reaches the
	// node's readers by its delivery from the store node (in commit
	// order, through the Link's tracker), never by its writer's
	// completion, which may arrive before an earlier message of the same
	// channel taken by another node; the protocol fans out no duplicate.
	DeliveredByLink bool

	l          *Link
	inbox      string // replies arrive on inbox.<request number>
	replies    chan *nats.Msg
	sub        *nats.Subscription
	afterBatch func()
	done       chan struct{}
	wg         sync.WaitGroup

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*forwardReq
	closed  bool
}

// forwardReq is one request waiting for its answer.
type forwardReq struct {
	op       Op
	ez       persist.WriteCompletion
	cf       persist.CFCompletion
	deadline time.Time
}

// NewForwarder starts a Forwarder on l. replyQueue bounds the answers
// waiting for its goroutine (an answer NATS drops past it times out:
// 503); 0 means 65536.
func (l *Link) NewForwarder(afterBatch func(), replyQueue int) (*Forwarder, error) {
	if replyQueue <= 0 {
		replyQueue = 65536
	}
	if afterBatch == nil {
		afterBatch = func() {}
	}
	f := &Forwarder{
		l:          l,
		inbox:      l.nc.NewInbox(),
		replies:    make(chan *nats.Msg, replyQueue),
		afterBatch: afterBatch,
		done:       make(chan struct{}),
		pending:    make(map[uint64]*forwardReq),
	}
	sub, err := l.nc.ChanSubscribe(f.inbox+".*", f.replies)
	if err != nil {
		return nil, fmt.Errorf("cluster: forwarder: subscribe to replies: %w", err)
	}
	f.sub = sub
	f.wg.Add(1)
	go f.run()
	return f, nil
}

// Close stops the Forwarder: requests still waiting complete with a
// storage error, and no completion runs after Close returns.
func (f *Forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	_ = f.sub.Unsubscribe()
	close(f.done)
	f.wg.Wait()
}

// EZWriteTo forwards w; see Forwarder for the contract.
func (f *Forwarder) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	r := Request{Op: OpEZWrite, EZ: w}
	if faultAckFirst {
		f.ackFirst(&r, func() { done.WriteDone(persist.EZWriteResult{Duplicate: true}) })
		return
	}
	if err := f.forward(&r, &forwardReq{op: OpEZWrite, ez: done}); err != nil {
		done.WriteDone(persist.EZWriteResult{Err: err})
	}
}

// CFPushTo forwards p; see Forwarder for the contract.
func (f *Forwarder) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	r := Request{Op: OpCFPush, CF: p}
	if faultAckFirst {
		f.ackFirst(&r, func() { done.CFPushDone(persist.CFPushResult{Duplicate: true, Msg: persist.CFMessage{ID: p.ID}}) })
		return
	}
	if err := f.forward(&r, &forwardReq{op: OpCFPush, cf: done}); err != nil {
		done.CFPushDone(persist.CFPushResult{Err: err})
	}
}

// ackFirst is the planted fault (fault_clusterack.go): answer ok now,
// send the request a second later, its answer ignored.
func (f *Forwarder) ackFirst(r *Request, ack func()) {
	frame := appendRequest(nil, r) // before the ack: the op's bytes are reused after it
	ack()
	f.afterBatch()
	time.AfterFunc(time.Second, func() { f.l.send(f.l.storeSubject(), f.inbox+".0", frame) })
}

// errForwarderClosed answers requests made after Close.
var errForwarderClosed = fmt.Errorf("%w: cluster: forwarder closed", persist.ErrStorage)

// forward registers fr and queues r's frame, or says why it cannot.
func (f *Forwarder) forward(r *Request, fr *forwardReq) error {
	fr.deadline = time.Now().Add(f.l.opts.RequestTimeout)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errForwarderClosed
	}
	f.next++
	n := f.next
	f.pending[n] = fr
	f.mu.Unlock()
	if !f.l.send(f.l.storeSubject(), f.inbox+"."+strconv.FormatUint(n, 10), appendRequest(nil, r)) &&
		f.take(n) != nil { // else Close completed it meanwhile
		return fmt.Errorf("%w: cluster: outbox full", persist.ErrStorage)
	}
	return nil
}

// take removes and returns request n, nil if it already completed.
func (f *Forwarder) take(n uint64) *forwardReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	fr := f.pending[n]
	delete(f.pending, n)
	return fr
}

// run is the Forwarder's goroutine: it completes answered requests and
// sweeps expired ones.
func (f *Forwarder) run() {
	defer f.wg.Done()
	tick := time.NewTicker(max(f.l.opts.RequestTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case m := <-f.replies:
			f.answered(m)
			for more := true; more; {
				select {
				case m := <-f.replies:
					f.answered(m)
				default:
					more = false
				}
			}
			f.afterBatch()
		case now := <-tick.C:
			if f.expire(now, fmt.Errorf("%w: cluster: store node did not answer in %s", persist.ErrStorage, f.l.opts.RequestTimeout)) {
				f.afterBatch()
			}
		case <-f.done:
			if f.expire(time.Time{}, errForwarderClosed) {
				f.afterBatch()
			}
			return
		}
	}
}

// answered completes the request m answers.
func (f *Forwarder) answered(m *nats.Msg) {
	n, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	fr := f.take(n)
	if fr == nil {
		return // already expired
	}
	var a Answer
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		err = fmt.Errorf("%w: cluster: no store node is serving: %w", persist.ErrStorage, nats.ErrNoResponders)
	} else {
		a, err = decodeAnswer(m.Data, fr.op)
		if err != nil {
			err = fmt.Errorf("%w: cluster: forward: %w", persist.ErrStorage, err)
		}
	}
	if err != nil {
		a = Answer{EZ: persist.EZWriteResult{Err: err}, CF: persist.CFPushResult{Err: err}}
	}
	if f.DeliveredByLink {
		a.EZ.Duplicate, a.CF.Duplicate = true, true
	}
	if fr.op == OpEZWrite {
		fr.ez.WriteDone(a.EZ)
	} else {
		fr.cf.CFPushDone(a.CF)
	}
}

// expire completes with err, oldest first, every request whose deadline
// is before now (every request for a zero now); it reports whether it
// completed any.
func (f *Forwarder) expire(now time.Time, err error) bool {
	var expired []uint64
	f.mu.Lock()
	for n, fr := range f.pending {
		if now.IsZero() || fr.deadline.Before(now) {
			expired = append(expired, n)
		}
	}
	f.mu.Unlock()
	slices.Sort(expired)
	for _, n := range expired {
		fr := f.take(n)
		if fr == nil {
			continue // its sender took it back
		}
		if fr.op == OpEZWrite {
			fr.ez.WriteDone(persist.EZWriteResult{Err: err})
		} else {
			fr.cf.CFPushDone(persist.CFPushResult{Err: err})
		}
	}
	return len(expired) > 0
}
