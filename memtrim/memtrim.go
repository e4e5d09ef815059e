package memtrim

import (
	"flag"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/promtext"
)

// Defaults of Options.
const (
	DefaultEvery    = 2 * time.Second
	DefaultMinBytes = 1 << 20
)

// Options configure a Trimmer. The zero value is ready: EnsureDefaults
// fills what is zero.
type Options struct {
	// Every is how often the heap is looked at (0: DefaultEvery); a
	// negative value disables trimming. The decision compares two looks,
	// so a burst's memory goes back within about two intervals of its
	// end.
	Every time.Duration
	// MinBytes is the least reclaimable memory (free heap pages plus
	// garbage not yet collected) worth a collection (DefaultMinBytes).
	MinBytes uint64
}

// EnsureDefaults fills the zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Every == 0 {
		o.Every = DefaultEvery
	}
	if o.MinBytes == 0 {
		o.MinBytes = DefaultMinBytes
	}
}

// RegisterFlags declares --memory-trim-every on fs, bound to o.Every
// and starting from its default.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.Every, "memory-trim-every", DefaultEvery, "how often the heap is looked at to give its free memory back to the OS once a burst is over; negative disables it")
}

// heapSample is what one look at the heap reads (bytes).
type heapSample struct {
	free    uint64 // free heap pages the runtime keeps (resident)
	objects uint64 // heap objects: live plus garbage not yet collected
	live    uint64 // live at the last collection
	allocs  uint64 // allocated since the process started
}

// reclaimable is what a collection and a release would give back.
func (s heapSample) reclaimable() uint64 {
	garbage := uint64(0)
	if s.objects > s.live {
		garbage = s.objects - s.live
	}
	return s.free + garbage
}

// worthTrimming decides from two looks one interval apart: enough to
// give back (minBytes, and a sixteenth of the live heap: a collection
// costs in proportion to what is live), and the burst over (allocated
// since the last look less than an eighth of it: a busy heap would fill
// again at once).
func worthTrimming(prev, cur heapSample, minBytes uint64) bool {
	r := cur.reclaimable()
	if r < minBytes || r < cur.live/16 {
		return false
	}
	return cur.allocs-prev.allocs < r/8
}

// Trimmer looks at the heap on a goroutine of its own (Start).
type Trimmer struct {
	opts    Options
	read    func() heapSample
	release func()
	done    chan struct{}
	wg      sync.WaitGroup
	trims   atomic.Uint64
	freed   atomic.Uint64 // reclaimable bytes at each trim, summed
}

// Start starts a Trimmer; nil when o.Every is negative (disabled).
func Start(o Options) *Trimmer {
	o.EnsureDefaults()
	if o.Every < 0 {
		return nil
	}
	t := newTrimmer(o, readHeap, debug.FreeOSMemory)
	t.wg.Add(1)
	go t.run()
	return t
}

func newTrimmer(o Options, read func() heapSample, release func()) *Trimmer {
	return &Trimmer{opts: o, read: read, release: release, done: make(chan struct{})}
}

// Stop stops the Trimmer and waits for it. Safe on nil.
func (t *Trimmer) Stop() {
	if t == nil {
		return
	}
	close(t.done)
	t.wg.Wait()
}

func (t *Trimmer) run() {
	defer t.wg.Done()
	tick := time.NewTicker(t.opts.Every)
	defer tick.Stop()
	prev := t.read()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			prev = t.look(prev)
		}
	}
}

// look decides from prev and a new look, trims if worth it, and returns
// the look to compare the next one with.
func (t *Trimmer) look(prev heapSample) heapSample {
	cur := t.read()
	if !worthTrimming(prev, cur, t.opts.MinBytes) {
		return cur
	}
	t.release()
	t.trims.Add(1)
	t.freed.Add(cur.reclaimable())
	return t.read() // the collection allocated nothing worth counting
}

// Trims is how many times the Trimmer gave memory back, and the
// reclaimable bytes it found each time, summed (0, 0 on nil).
func (t *Trimmer) Trims() (n, bytes uint64) {
	if t == nil {
		return 0, 0
	}
	return t.trims.Load(), t.freed.Load()
}

var sampleNames = [...]string{
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/gc/heap/allocs:bytes",
}

// readHeap reads the runtime's heap figures.
func readHeap() heapSample {
	var s [len(sampleNames)]metrics.Sample
	for i, n := range sampleNames {
		s[i].Name = n
	}
	metrics.Read(s[:])
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return heapSample{free: v(0), objects: v(1), live: v(2), allocs: v(3)}
}

// AppendMetrics appends the Trimmer's counters to a /metrics answer
// (Prometheus text); nothing on nil.
func (t *Trimmer) AppendMetrics(dst []byte) []byte {
	if t == nil {
		return dst
	}
	n, b := t.Trims()
	dst = promtext.Counter(dst, "halley_memory_trims_total", "Times the heap's free memory was given back to the OS after a burst (--memory-trim-every).", float64(n))
	return promtext.Counter(dst, "halley_memory_trimmed_bytes_total", "Reclaimable heap bytes (free pages and uncollected garbage) found at each trim, summed.", float64(b))
}
