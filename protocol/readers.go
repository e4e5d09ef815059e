package protocol

import (
	"sync"
	"sync/atomic"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// Store reads run off the event loops (issue 16): a catch-up, a replay
// or a poll's read may wait on the disk, and a loop that waited would
// stall every connection it serves, pings and /healthz included. A loop
// hands the read to the API's reader pool (a few goroutines, a bounded
// queue) and the result comes back to it as a task, where the loop only
// copies bytes. A read that finds the queue full waits in the pool's
// overflow list, in order, and a reader moves it to the queue when there
// is room: a loop never blocks, and a burst of reads (every long-poll
// re-issued at once after the push that answered it; every client of a
// restarted node reconnecting) is served late rather than answered 503.
// The overflow needs no bound of its own: a connection has at most one
// read in flight (a request is pending while its poll reads; a
// subscriber is "reading" until its read is back), so it holds at most
// one entry per open connection. Only while the store reports itself
// unavailable (Healthy, C-10) is a read that finds the queue full refused
// at once: a request is answered 503 "storage unavailable" and a stream
// retries once it has drained, rather than waiting on a store that is
// down.
//
// A subscriber whose read is in flight is "reading": like a paused one,
// deliveries pass it by, and they record on its loop the highest seq (id)
// delivered on its channel (topic). When the read comes back the
// subscriber goes on from its cursor and reads again while a delivery it
// let pass is past the cursor: the store has every message before its
// delivery runs, so nothing is lost, and the cursor skips what a read
// already gave, so nothing is repeated. A connection that closed, or was
// revoked or answered, while its read was in flight is no longer the
// subscriber's (its Tag changed): the result is dropped.

// readBufs is the memory of one store read and its answer, pooled: a
// read's result and a poll's rendered answer are garbage once the loop
// has copied them to the socket, and a flood of reads (1000 pipelined
// /reads, C-08) would otherwise grow the heap by what the collector has
// not caught up with.
type readBufs struct {
	res  persist.ReadBuf
	body []byte
}

// storeRead is one read handed to the pool: read runs on a pool
// goroutine, then Run on the loop of the connection it is for.
type storeRead interface {
	engine.Task
	read()
	loop() int
}

// readPool runs storeReads on a few goroutines.
type readPool struct {
	jobs chan storeRead
	quit chan struct{}
	wg   sync.WaitGroup
	// pending counts reads queued or being read; a read leaves it once
	// its result is posted to its loop (tests wait for it to settle).
	pending atomic.Int64
	// overflow[head:] holds, in order, the reads that found jobs full;
	// queued mirrors its length so that a submit sees it without the lock.
	mu       sync.Mutex
	overflow []storeRead
	head     int
	queued   atomic.Int64
}

// startReaders starts the pool (Attach).
func (a *API) startReaders() {
	p := &a.readers
	p.jobs = make(chan storeRead, a.opts.ReadQueue)
	p.quit = make(chan struct{})
	for range a.opts.Readers {
		p.wg.Add(1)
		go a.runReader()
	}
}

func (a *API) runReader() {
	p := &a.readers
	defer p.wg.Done()
	for {
		select {
		case <-p.quit:
			return
		case j := <-p.jobs:
			j.read()
			a.loops.PostTask(j.loop(), j)
			p.pending.Add(-1)
			if p.queued.Load() > 0 {
				p.refill()
			}
		}
	}
}

// submitRead queues j for the pool without blocking. When the queue is
// full j waits in the overflow, unless the store is unavailable: then
// false (the caller answers 503 or retries later).
func (a *API) submitRead(j storeRead) bool {
	p := &a.readers
	p.pending.Add(1)
	if p.queued.Load() == 0 {
		select {
		case p.jobs <- j:
			return true
		default:
		}
	}
	if a.store.Healthy() != nil {
		p.pending.Add(-1)
		a.stats.readsRefused.Add(1)
		return false
	}
	p.mu.Lock()
	p.overflow = append(p.overflow, j)
	p.queued.Add(1)
	p.mu.Unlock()
	// Move it on now if the readers emptied the queue meanwhile: they
	// refill only after a read, and may all be idle.
	p.refill()
	return true
}

// refill moves overflowed reads to the queue, oldest first, while it has
// room.
func (p *readPool) refill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	moved := 0
	for p.head < len(p.overflow) {
		select {
		case p.jobs <- p.overflow[p.head]:
			p.overflow[p.head] = nil
			p.head++
			moved++
			continue
		default:
		}
		break
	}
	p.queued.Add(-int64(moved))
	if p.head == len(p.overflow) {
		p.overflow, p.head = p.overflow[:0], 0
	}
}

// Close stops the reader pool once the reads in progress are done, and
// the index sweeper; call it after the engine stopped (reads queued then
// are dropped: no loop would run their results). Idempotent; a no-op
// before Attach.
func (a *API) Close() {
	p := &a.readers
	if p.quit == nil {
		return
	}
	a.closeOnce.Do(func() { close(p.quit); close(a.sweepStop) })
	p.wg.Wait()
	<-a.sweepDone
}
