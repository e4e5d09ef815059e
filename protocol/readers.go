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
// copies bytes. A full queue refuses at once: the request is answered 503
// "storage unavailable" (C-10) and a stream retries once it has drained,
// rather than a loop blocking behind a slow disk.
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
		}
	}
}

// submitRead queues j for the pool without blocking; false when the
// queue is full (or the API closed).
func (a *API) submitRead(j storeRead) bool {
	a.readers.pending.Add(1)
	select {
	case a.readers.jobs <- j:
		return true
	default:
		a.readers.pending.Add(-1)
		a.stats.readsRefused.Add(1)
		return false
	}
}

// Close stops the reader pool once the reads in progress are done; call
// it after the engine stopped (reads queued then are dropped: no loop
// would run their results). Idempotent; a no-op before Attach.
func (a *API) Close() {
	p := &a.readers
	if p.quit == nil {
		return
	}
	a.closeOnce.Do(func() { close(p.quit) })
	p.wg.Wait()
}
