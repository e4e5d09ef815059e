package persist

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Storage faults (C-09, C-10). Two states make the Store refuse new writes
// at once, without queueing them:
//
//   - failed: a commit failed (the WAL could not be written or synced).
//     Sticky: Pebble cannot tell which part of the batch reached the disk,
//     so nothing may be acknowledged again until the process reopens the
//     directory. Logged when it happens and then every minute.
//   - stalled: the committer's current call into Pebble has run longer than
//     Options.StallTimeout. Writes already queued wait for it; when it
//     returns they complete as it did (ok only if synced) and the Store is
//     healthy again.
//
// The write queue is bounded and never blocks the caller (an event loop):
// a write that finds it full is refused too.

// errQueueFull and errStalled are fixed values so that refusing a write
// allocates nothing.
var (
	errQueueFull = fmt.Errorf("%w: write queue full", ErrStorage)
	errStalled   = fmt.Errorf("%w: a commit is taking longer than the stall timeout", ErrStorage)
)

// Healthy reports nil while the Store accepts writes; ErrClosed after
// Close; an error wrapping ErrStorage after a failed commit (until the
// process reopens the directory) or while a commit has been running longer
// than Options.StallTimeout (C-10). Safe from any goroutine, lock-free and
// allocation-free.
func (s *Store) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.refusal()
}

// refusal is why a new write must be refused at once, or nil.
func (s *Store) refusal() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	if s.watch.stalledFor() > s.opts.StallTimeout {
		return errStalled
	}
	return nil
}

// diskWatch times the committer's and the syncer's units of work (a
// group from its apply to its fsync, a sweep, an account change, the
// final sync): every call into Pebble is inside one, so a unit that does
// not end is a stalled disk. Units overlap in the commit pipeline: the
// watch reports the time since the last progress, that is since the
// first open unit began or one of them ended.
type diskWatch struct {
	mu    sync.Mutex // orders begin, end and abandon
	units int        // open units, under mu
	// since is when the watch last saw progress with units open
	// (monotonic, > 0), 0 when none is open, abandoned once Close gave up
	// on the committer. Stored under mu, loaded without it.
	since atomic.Int64
	// now is a monotonic clock, never 0; tests replace it.
	now func() time.Duration
}

// abandoned marks a diskWatch whose Store Close gave up on: the committer
// must not call into Pebble again.
const abandoned = -1

// begin opens a unit; false once Close gave up on the committer, which
// then must not touch Pebble.
func (w *diskWatch) begin() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.Load() == abandoned {
		return false
	}
	w.units++
	if w.units == 1 {
		w.since.Store(int64(w.now()))
	}
	return true
}

// end closes a unit begin opened (a no-op once abandoned).
func (w *diskWatch) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.Load() == abandoned || w.units == 0 {
		return
	}
	w.units--
	if w.units == 0 {
		w.since.Store(0)
	} else {
		w.since.Store(int64(w.now()))
	}
}

// stalledFor is how long the open units have made no progress, 0 when
// none is open.
func (w *diskWatch) stalledFor() time.Duration {
	v := w.since.Load()
	if v <= 0 {
		return 0
	}
	return w.now() - time.Duration(v)
}

// abandon gives up on units that made no progress for at least limit:
// true if so, after which begin fails forever.
func (w *diskWatch) abandon(limit time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.since.Load()
	if v > 0 && w.now()-time.Duration(v) > limit {
		w.since.Store(abandoned)
		return true
	}
	return false
}

// monotonicClock returns a clock for diskWatch: time since the call, plus
// one so that it is never 0.
func monotonicClock() func() time.Duration {
	start := time.Now()
	return func() time.Duration { return time.Since(start) + 1 }
}

// awaitCommitter waits for the committer to finish, or gives up once its
// current unit has run longer than twice the stall timeout: Close never
// hangs on a stalled disk.
func (s *Store) awaitCommitter() error {
	limit := 2 * s.opts.StallTimeout
	poll := time.NewTicker(max(s.opts.StallTimeout/8, time.Millisecond))
	defer poll.Stop()
	for {
		select {
		case <-s.committerDone:
			return nil
		case <-poll.C:
			if d := s.watch.stalledFor(); s.watch.abandon(limit) {
				return fmt.Errorf("persist: close %s: %w: a commit has waited for the disk for %v (twice the stall timeout); gave up without closing the database, restart the process", s.opts.Dir, ErrStorage, d.Round(time.Millisecond))
			}
		}
	}
}

// fail makes err (wrapped in ErrStorage) the Store's sticky failure; the
// first one is logged.
func (s *Store) fail(err error) {
	if !errors.Is(err, ErrStorage) {
		err = fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if s.failed.CompareAndSwap(nil, &err) {
		s.logFailed()
	}
}

// errFailed returns the sticky storage error, or nil.
func (s *Store) errFailed() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// logFailed says, once more, that the Store is failed.
func (s *Store) logFailed() {
	s.opts.Logf("%v; writes are refused (503) until the process is restarted", s.errFailed())
}
