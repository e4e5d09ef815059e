package memtrim

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

const mib = 1 << 20

// TestWorthTrimming: memory goes back only when there is enough of it
// (MinBytes, a quarter of the live heap) and the burst is over.
func TestWorthTrimming(t *testing.T) {
	idle := heapSample{allocs: 1000 * mib}
	for _, c := range []struct {
		name      string
		prev, cur heapSample
		want      bool
	}{
		{"burst over, free pages", idle, heapSample{free: 20 * mib, objects: 20 * mib, live: 20 * mib, allocs: 1000 * mib}, true},
		{"burst over, garbage not collected", idle, heapSample{objects: 40 * mib, live: 20 * mib, allocs: 1001 * mib}, true},
		{"still allocating", idle, heapSample{free: 20 * mib, objects: 20 * mib, live: 20 * mib, allocs: 1010 * mib}, false},
		{"below MinBytes", idle, heapSample{free: mib / 2, objects: 4 * mib, live: 4 * mib, allocs: 1000 * mib}, false},
		{"below a sixteenth of live", idle, heapSample{free: 10 * mib, objects: 200 * mib, live: 200 * mib, allocs: 1000 * mib}, false},
		{"objects below live (a collection ran between)", idle, heapSample{objects: 10 * mib, live: 20 * mib, allocs: 1000 * mib}, false},
	} {
		if got := worthTrimming(c.prev, c.cur, DefaultMinBytes); got != c.want {
			t.Errorf("%s: worthTrimming = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLookTrimsOnce: a look that finds memory to give back releases it
// once and counts it; the next look, with nothing left, does not.
func TestLookTrimsOnce(t *testing.T) {
	heap := heapSample{free: 30 * mib, objects: 20 * mib, live: 20 * mib, allocs: 5 * mib}
	released := 0
	tr := newTrimmer(Options{Every: DefaultEvery, MinBytes: DefaultMinBytes},
		func() heapSample { return heap },
		func() { released++; heap.free = 0 })
	prev := tr.look(heap)
	if released != 1 {
		t.Fatalf("released %d times, want 1", released)
	}
	if n, b := tr.Trims(); n != 1 || b != 30*mib {
		t.Fatalf("Trims() = %d, %d; want 1, %d", n, b, 30*mib)
	}
	tr.look(prev)
	if released != 1 {
		t.Fatalf("released again with nothing to give back (%d)", released)
	}
}

// TestReadHeapAndRelease on the real runtime: garbage left by a burst is
// seen as reclaimable, and debug.FreeOSMemory (what a trim runs) gives
// the runtime's free pages back, as the runtime's own figures show.
func TestReadHeapAndRelease(t *testing.T) {
	before := readHeap()
	var keep [][]byte
	for range 64 {
		keep = append(keep, make([]byte, mib))
	}
	runtime.KeepAlive(keep)
	keep = nil
	burst := readHeap()
	if burst.allocs-before.allocs < 64*mib {
		t.Fatalf("allocated %d bytes, the runtime counted %d", 64*mib, burst.allocs-before.allocs)
	}
	if burst.reclaimable() < 32*mib && burst.objects < 64*mib {
		t.Fatalf("64 MiB of garbage: reclaimable %d, objects %d", burst.reclaimable(), burst.objects)
	}
	if Start(Options{Every: -1}) != nil {
		t.Fatal("a negative Every did not disable the Trimmer")
	}
	r0 := releasedBytes()
	tr := newTrimmer(Options{MinBytes: DefaultMinBytes}, readHeap, debug.FreeOSMemory)
	tr.look(burst)
	if n, _ := tr.Trims(); n != 1 {
		t.Fatalf("a look after a 64 MiB burst did not trim (%d trims)", n)
	}
	if got := releasedBytes(); got <= r0 {
		t.Fatalf("heap bytes released to the OS: %d before the trim, %d after", r0, got)
	}
}

func releasedBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
