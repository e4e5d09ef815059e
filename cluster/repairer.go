package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/halleypush/halley/persist"
)

// Repairer runs the repairs a light node's Link asks for: its OnRepair
// queues the channel; a worker reads the store node after the point the
// Link gave (Link.Read, as many answers as More says), hands each answer
// to deliver, then calls Link.Repaired. Reads block for a round trip, so
// they run on a few workers, never on the dispatch goroutine or the event
// loops.
//
// The queue needs no bound: the Link reports a channel again only after
// Repaired, so at most one repair per followed channel waits. A read that
// fails (store node down, NATS down) is retried after RetryWait until it
// succeeds or the channel is no longer followed: deliveries of the
// channel stay stopped meanwhile, so nothing is delivered out of order.
type Repairer struct {
	// Link is the light node's Link; set before the first repair.
	Link *Link
	// Deliver receives each read answer, in order per channel, on a
	// worker goroutine; it must not block for long (post to the loops).
	// a.Gap says messages after the repair point were dropped by
	// retention.
	Deliver func(kind Kind, name string, a ReadAnswer)
	// Limit bounds each read; zero fields take the store node's caps.
	Limit persist.ReadLimit
	// RetryWait is the pause before a failed read is tried again.
	// Default 1 s.
	RetryWait time.Duration

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []repairJob
	closed  bool
	wg      sync.WaitGroup
	started bool
}

type repairJob struct {
	kind  Kind
	name  string
	after uint64
}

// Start runs workers goroutines (at least 1).
func (r *Repairer) Start(workers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	r.cond = sync.NewCond(&r.mu)
	if r.RetryWait <= 0 {
		r.RetryWait = time.Second
	}
	for range max(workers, 1) {
		r.wg.Add(1)
		go r.work()
	}
}

// Close stops the workers once their current read ends; queued repairs
// are dropped.
func (r *Repairer) Close() {
	r.mu.Lock()
	r.closed = true
	if r.cond != nil {
		r.cond.Broadcast()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// OnRepair queues a repair; it never blocks. Pass it as
// LinkOptions.OnRepair.
func (r *Repairer) OnRepair(kind Kind, name string, after uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, repairJob{kind, name, after})
	if r.cond != nil {
		r.cond.Signal()
	}
}

func (r *Repairer) work() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.closed {
			r.cond.Wait()
		}
		if r.closed {
			r.mu.Unlock()
			return
		}
		j := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		r.repair(j)
	}
}

// repair reads j's channel up to its end and tells the Link.
func (r *Repairer) repair(j repairJob) {
	req := ReadRequest{Kind: j.kind, Name: j.name, After: j.after, Limit: r.Limit}
	for {
		if !r.Link.Following(j.kind, j.name) || r.isClosed() {
			return
		}
		a, err := r.Link.Read(context.Background(), &req)
		if err != nil {
			r.Link.opts.Logf("cluster: repair %s after %d: %v", j.name, req.After, err)
			time.Sleep(r.RetryWait)
			continue
		}
		r.Deliver(j.kind, j.name, a)
		req.After = a.Cursor
		if !a.More {
			r.Link.Repaired(j.kind, j.name, a.Cursor)
			return
		}
	}
}

func (r *Repairer) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}
