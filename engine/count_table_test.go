package engine

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestCountTableModel drives a countTable and a Go map with the same
// random adds (some under a limit) and decrements over a small key space (long probe runs,
// wrap-around, removals in the middle of runs, growth and shrinking) and
// checks after each step that both agree on every key, and that every
// entry is reachable from its home without a free slot on the way.
func TestCountTableModel(t *testing.T) {
	for _, keys := range []int{5, 40, 700} {
		rng := rand.New(rand.NewPCG(uint64(keys), 1))
		var tb countTable[ClientKey]
		model := map[ClientKey]int32{}
		for step := range 60_000 {
			k := ClientKey(rng.IntN(keys))
			// Mostly adds in the first third, mostly decrements after it,
			// so the table grows to every key and shrinks to a few.
			addPct := 65
			if step >= 20_000 {
				addPct = 15
			}
			if rng.IntN(100) < addPct {
				if lim := int32(rng.IntN(12)); lim < 10 {
					want := model[k] < lim
					if got := tb.addBelow(k, 1, lim); got != want {
						t.Fatalf("key %d at %d: addBelow(limit %d) = %v, want %v", k, model[k], lim, got, want)
					}
					if want {
						model[k]++
					}
				} else {
					tb.addBelow(k, 1, math.MaxInt32)
					model[k]++
				}
			} else {
				tb.dec(k)
				if model[k] > 1 {
					model[k]--
				} else {
					delete(model, k)
				}
			}
			if step%97 == 0 || keys == 5 {
				checkCountTable(t, &tb, model, keys)
			}
		}
		for k := range model {
			for range model[k] {
				tb.dec(k)
			}
		}
		if tb.n != 0 || len(tb.counts) != minCountSlots {
			t.Fatalf("%d keys: %d entries, %d slots left after every count was taken back, want 0 in %d", keys, tb.n, len(tb.counts), minCountSlots)
		}
	}
}

func checkCountTable(t *testing.T, tb *countTable[ClientKey], model map[ClientKey]int32, keys int) {
	t.Helper()
	for k := range ClientKey(keys) {
		if got, want := tb.get(k), model[k]; got != want {
			t.Fatalf("key %d: count %d, want %d", k, got, want)
		}
	}
	if tb.n != len(model) {
		t.Fatalf("%d entries, want %d", tb.n, len(model))
	}
	if s := len(tb.counts); s > 0 && (tb.n*8 > s*7 || (s > minCountSlots && tb.n*8 < s/2)) {
		t.Fatalf("%d entries in %d slots: not resized", tb.n, s)
	}
	seen := 0
	tb.each(func(k ClientKey, n int32) {
		seen++
		if model[k] != n {
			t.Fatalf("each: key %d count %d, want %d", k, n, model[k])
		}
	})
	if seen != len(model) {
		t.Fatalf("each saw %d entries, want %d", seen, len(model))
	}
	mask := len(tb.counts) - 1
	for i, c := range tb.counts {
		if c == 0 {
			continue
		}
		for j := tb.home(tb.keys[i]); j != i; j = (j + 1) & mask {
			if tb.counts[j] == 0 {
				t.Fatalf("key %d at slot %d: free slot %d between it and its home", tb.keys[i], i, j)
			}
		}
	}
}

// TestCountTableBytesPerEntry: an entry of a table of many busy clients
// costs its 12 bytes over the table's load (between 7/16 and 7/8 full),
// not a Go map's 39 B measured on a 13-node run.
func TestCountTableBytesPerEntry(t *testing.T) {
	const clients = 80_000
	var tb countTable[ClientKey]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range clients {
		tb.addBelow(ClientKey(i), 2, math.MaxInt32)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / clients
	t.Logf("%.1f B per entry (%d slots)", per, len(tb.counts))
	if per > 12*16/7+1 {
		t.Errorf("%.1f B per entry, want at most %.1f", per, 12*16/7.0)
	}
	runtime.KeepAlive(&tb)
}

// TestCountTableAllocs: counting a client allocates nothing once the
// table has room, even when its last entry leaves and comes back (one
// client's long-polls, all answered by one message and all polling
// again: TestRealPathAllocs's poll cycle).
func TestCountTableAllocs(t *testing.T) {
	var tb countTable[ClientKey]
	tb.addBelow(1, 1, 10)
	if n := testing.AllocsPerRun(100, func() { tb.addBelow(1, 1, 10); tb.dec(1); _ = tb.get(1) }); n != 0 {
		t.Errorf("%v allocations per add, dec and get of a present key", n)
	}
	if n := testing.AllocsPerRun(100, func() { tb.dec(1); tb.addBelow(1, 1, 10) }); n != 0 {
		t.Errorf("%v allocations per last entry taken away and back", n)
	}
}
