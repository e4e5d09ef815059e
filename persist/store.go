package persist

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is the durable state of one Halley node. Every method is safe to
// call from any goroutine; which ones may block is said on each.
type Store struct {
	opts Options
	db   *pebble.DB
	wopt *pebble.WriteOptions

	// accounts is replaced whole on every change; readers never lock.
	accounts  atomic.Pointer[accountTable]
	accountMu sync.Mutex // serialises account changes
	// migrated are the accounts Open converted (Migrated).
	migrated []Account

	// chanMu guards channels and every channel's fields but floor (the
	// committer's alone). The committer holds it for writing only to
	// publish a committed batch or to forget a removed account's channels.
	chanMu   sync.RWMutex
	channels map[string]*channel

	// topicMu guards the topics map (not the counters inside a topic,
	// which are atomics). The committer takes it for writing only to add
	// topics or to forget a removed account's.
	topicMu sync.RWMutex
	topics  map[string]*cfTopic

	// closeMu orders enqueue's send against Close's close(writes).
	closeMu sync.RWMutex
	closed  atomic.Bool // set under closeMu; read without it by Healthy
	writes  chan op
	sweeps  chan chan struct{}

	// misuse counts Pebble's reports of a possible API misuse
	// (misuseListener); each is a bug in Halley.
	misuse *atomic.Uint64

	// The commit pipeline (pipeline.go): applied groups go to the syncer
	// on syncq and come back, published, on recycled.
	syncq      chan *group
	recycled   chan *group
	syncerDone chan struct{}

	// failed holds the ErrStorage-wrapped error of the first failed commit.
	failed atomic.Pointer[error]
	// watch times the committer's calls into Pebble (stalls, Close's bound).
	watch diskWatch
	// closeErr is the committer's final sync and close error, read by
	// Close after committerDone.
	closeErr error

	committerDone chan struct{}
	sweeperStop   chan struct{}
	sweeperDone   chan struct{}

	// tickSweepFrom is where the next tick-memory sweep resumes (committer
	// goroutine only).
	tickSweepFrom []byte

	stats storeCounters

	// testHold, when set, holds the committer once it has applied the
	// group of a write to testHold.qname: tests hold the committer with
	// it. Nil in production.
	testHold atomic.Pointer[holdHook]
}

// holdHook is Store.testHold's: wait runs once the committer has applied
// a group holding a write to qname.
type holdHook struct {
	qname string
	wait  func()
}

// channel is the in-memory metadata of one EZComet channel. Its messages
// are the contiguous range first..last; first == last+1 when it is empty
// (every deletion removes a prefix: count and age retention drop the
// oldest, a flush drops all).
type channel struct {
	qname string
	first uint64
	last  uint64
	// floor is the lowest seq that may still be on disk: messages
	// floor..first-1 are dropped for readers (nothing reads below first)
	// and deleted from disk by a later batch (committer.dropTo). 0 after
	// Open: whatever a previous run left below first is deleted with the
	// next chunk; 1 for a new channel. The committer's alone: readers
	// never look at it.
	floor uint64
}

// cfTopic is the in-memory metadata of one Cometify topic. Only the
// committer stores into last and droppedMax; readers load them without
// locks.
type cfTopic struct {
	name string
	// last is the highest id ever accepted, published after the batch
	// that accepted it committed.
	last atomic.Uint64
	// droppedMax is the highest id deleted by retention (0 if none): every
	// accepted id above it is still retained, every one at or below it is
	// gone. The sweeper publishes it BEFORE deleting, so that a reader
	// which misses a deleted push always sees the gap.
	droppedMax atomic.Uint64
	// lastSecret is the acceptance time (Unix ns) of the newest CF-P-09
	// record on the topic, 0 if none: a secret=0 push looks its digest up
	// only while such a record may still be retained.
	lastSecret atomic.Int64
}

type storeCounters struct {
	writesCommitted, appended, duplicates, conflicts, flushes atomic.Uint64
	batches, batchSizeSum, syncCount, syncNanosSum            atomic.Uint64
	syncLatency                                               [len(SyncLatencyBounds) + 1]atomic.Uint64
	droppedByRetention, droppedByFlush, ticksForgotten        atomic.Uint64
	errors                                                    atomic.Uint64
	cfPushes, cfDuplicates, cfConflicts, cfDropped            atomic.Uint64
	refused, revoked, cfSecretReplays, cfNoncesReused         atomic.Uint64
}

// Open opens (creating if needed) the Pebble database in opts.Dir, loads
// accounts and channel metadata into memory, and starts the committer and
// the retention sweeper. Close must be called to release the directory.
func Open(opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	fs := opts.FS
	if fs == nil {
		if err := tightenModes(opts.Dir); err != nil {
			return nil, fmt.Errorf("persist: make %s private: %w", opts.Dir, err)
		}
		fs = privateFS{vfs.Default}
	}
	misuse := new(atomic.Uint64)
	popts := &pebble.Options{
		FS:            fs,
		Logger:        pebbleLogger{logf: opts.Logf},
		EventListener: misuseListener(misuse, opts.Logf),
		CacheSize:     opts.CacheSize,
		// A larger memtable than Pebble's 4 MiB default: queues churn
		// (retention deletes what was appended minutes ago), and fewer,
		// larger flushes cut the compaction CPU that dominated the write
		// profile.
		MemTableSize: 64 << 20,
	}
	// Every write looks its tick up, and almost every tick is new: bloom
	// filters answer those misses without reading table blocks.
	popts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(opts.Dir, popts)
	if err != nil {
		return nil, fmt.Errorf("persist: open %s: %w", opts.Dir, err)
	}
	s := &Store{
		opts:          opts,
		db:            db,
		misuse:        misuse,
		wopt:          pebble.Sync,
		channels:      make(map[string]*channel),
		topics:        make(map[string]*cfTopic),
		writes:        make(chan op, opts.WriteQueue),
		sweeps:        make(chan chan struct{}),
		syncq:         make(chan *group, maxInFlight),
		recycled:      make(chan *group, maxInFlight),
		syncerDone:    make(chan struct{}),
		committerDone: make(chan struct{}),
		sweeperStop:   make(chan struct{}),
		sweeperDone:   make(chan struct{}),
	}
	s.watch.now = opts.stallClock
	if s.watch.now == nil {
		s.watch.now = monotonicClock()
	}
	if opts.Sync == SyncNone {
		s.wopt = pebble.NoSync
	}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("persist: load %s: %w", opts.Dir, err)
	}
	go s.syncLoop()
	go s.commitLoop()
	go s.housekeeping()
	return s, nil
}

// load rebuilds the in-memory account table, channel and topic metadata.
func (s *Store) load() error {
	tab, err := s.loadAccounts()
	if err != nil {
		return err
	}
	if tab, s.migrated, err = s.migrateAccounts(tab); err != nil {
		return err
	}
	s.accounts.Store(tab)

	lo, hi := kindBounds(kindMeta)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	lo, hi = kindBounds(kindQueue)
	queue, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		_ = it.Close()
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		first, last, ok := decodeMeta(it.Value())
		if !ok {
			_ = it.Close()
			_ = queue.Close()
			return fmt.Errorf("bad channel metadata under %q", it.Key())
		}
		qname := string(it.Key()[2:])
		first, last = s.loadChannel(queue, qname, first, last)
		s.channels[qname] = &channel{qname: qname, first: first, last: last}
	}
	err = queue.Close()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.loadTopics()
}

// loadChannel returns qname's first and last seq from its metadata key
// (first, last) and its messages on disk (queue iterates over them).
// The committer writes the key only when a group creates the channel,
// flushes it or deletes dropped messages from disk (committer.dropTo),
// and the sweeper when it drops expired ones: an append changes last,
// and first only by count retention. So last is the newest message's
// seq if that is above the key's, and first is as far as EZMaxQueue
// makes it from last.
func (s *Store) loadChannel(queue *pebble.Iterator, qname string, first, last uint64) (uint64, uint64) {
	if newest, ok := lastID(queue, queueKey(nil, qname, 1<<64-1)); ok {
		last = max(last, newest)
	}
	if keep := uint64(s.opts.EZMaxQueue); last >= keep {
		first = max(first, last-keep+1)
	}
	return first, last
}

// lastID returns the id ending the greatest key of it below end, the key
// of the greatest id under a queue or push prefix, if there is one under
// that prefix.
func lastID(it *pebble.Iterator, end []byte) (uint64, bool) {
	if !it.SeekLT(end) {
		return 0, false
	}
	k := it.Key()
	if len(k) != len(end) || string(k[:len(k)-8]) != string(end[:len(end)-8]) {
		return 0, false
	}
	return idFromKey(k), true
}

func (s *Store) loadTopics() error {
	lo, hi := kindBounds(kindCFMeta)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	lo, hi = kindBounds(kindCFPush)
	pushes, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		_ = it.Close()
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		last, droppedMax, ok := decodeMeta(it.Value())
		if !ok || droppedMax > last {
			_ = it.Close()
			_ = pushes.Close()
			return fmt.Errorf("bad topic metadata under %q", it.Key())
		}
		t := &cfTopic{name: string(it.Key()[2:])}
		// The key is written by the topic's first push and by the
		// sweeper, not by every push: last is the newest push's id if
		// that is above the key's.
		if newest, ok := lastID(pushes, cfPushKey(nil, t.name, 1<<64-1)); ok {
			last = max(last, newest)
		}
		t.last.Store(last)
		t.droppedMax.Store(droppedMax)
		s.topics[t.name] = t
	}
	err = pushes.Close()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.loadSecretTimes()
}

// SyncMode returns the durability mode the Store was opened with.
func (s *Store) SyncMode() SyncMode { return s.opts.Sync }

// Close stops accepting writes (later ones complete with ErrClosed), lets
// the committer finish every write already queued, syncs the WAL and
// closes Pebble. It blocks until then, except on a stalled disk: once the
// committer's current call into Pebble has run for twice
// Options.StallTimeout, Close gives up, returns an error wrapping
// ErrStorage that says so, and nothing touches Pebble again (writes still
// queued complete with ErrClosed; the database is left for the next Open
// to recover). Reads after Close are not allowed. A second Close returns
// nil.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed.Load() {
		s.closeMu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.closeMu.Unlock()

	close(s.sweeperStop)
	<-s.sweeperDone
	close(s.writes)
	if err := s.awaitCommitter(); err != nil {
		return err
	}
	if s.closeErr != nil {
		return fmt.Errorf("persist: close %s: %w", s.opts.Dir, s.closeErr)
	}
	return nil
}

func (s *Store) closeDB() (err error) {
	defer func() {
		// Pebble may refuse to close after a failed commit; the process
		// is going to restart anyway.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrStorage, r)
		}
	}()
	return s.db.Close()
}

// guard runs a Pebble call, turning the fatal-error panic of pebbleLogger
// into an error.
func (s *Store) guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%w: %s", ErrStorage, string(fe))
		}
	}()
	if err := f(); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return nil
}

// Stats returns a snapshot of the counters. Safe from any goroutine.
func (s *Store) Stats() StoreStats {
	c := &s.stats
	st := StoreStats{
		WritesCommitted:    c.writesCommitted.Load(),
		Appended:           c.appended.Load(),
		Duplicates:         c.duplicates.Load(),
		Conflicts:          c.conflicts.Load(),
		Flushes:            c.flushes.Load(),
		Batches:            c.batches.Load(),
		BatchSizeSum:       c.batchSizeSum.Load(),
		SyncCount:          c.syncCount.Load(),
		SyncNanosSum:       c.syncNanosSum.Load(),
		DroppedByRetention: c.droppedByRetention.Load(),
		DroppedByFlush:     c.droppedByFlush.Load(),
		TicksForgotten:     c.ticksForgotten.Load(),
		Errors:             c.errors.Load(),
		CFPushes:           c.cfPushes.Load(),
		CFDuplicates:       c.cfDuplicates.Load(),
		CFConflicts:        c.cfConflicts.Load(),
		CFDropped:          c.cfDropped.Load(),
		Refused:            c.refused.Load(),
		Revoked:            c.revoked.Load(),
		CFSecretReplays:    c.cfSecretReplays.Load(),
		CFNoncesReused:     c.cfNoncesReused.Load(),
	}
	for i := range st.SyncLatency {
		st.SyncLatency[i] = c.syncLatency[i].Load()
	}
	return st
}

func (c *storeCounters) observeSync(d time.Duration) {
	c.syncCount.Add(1)
	c.syncNanosSum.Add(uint64(d))
	i := 0
	for i < len(SyncLatencyBounds) && d > SyncLatencyBounds[i] {
		i++
	}
	c.syncLatency[i].Add(1)
}

// pebbleFatal is what pebbleLogger.Fatalf panics with. Pebble calls Fatalf
// when a commit fails (e.g. the WAL cannot be written or synced); the
// default logger would exit the process, which would turn a full disk into
// a crash loop instead of 503 answers.
type pebbleFatal string

type pebbleLogger struct{ logf func(string, ...any) }

// misuseListener counts Pebble's reports of a possible API misuse into
// n, and logs the 1st, 2nd, 4th, 8th… of them. Halley's only API whose
// misuse Pebble can see is the single delete (committer.dropTo): a
// report is a bug in Halley, and the log names the key.
func misuseListener(n *atomic.Uint64, logf func(string, ...any)) *pebble.EventListener {
	return &pebble.EventListener{
		PossibleAPIMisuse: func(info pebble.PossibleAPIMisuseInfo) {
			if c := n.Add(1); c&(c-1) == 0 {
				logf("persist: Pebble reports %s (%d such reports since Open)", info, c)
			}
		},
	}
}

func (pebbleLogger) Infof(string, ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.logf("persist: pebble: "+format, args...)
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.logf("persist: pebble fatal: %s", msg)
	panic(pebbleFatal(msg))
}
