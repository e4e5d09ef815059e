package engine

import "hash/maphash"

// countTable maps keys to counts above zero: open addressing with linear
// probing over two parallel arrays, a free slot being a count of 0.
//
// Why not a Go map: on a node of a cluster, and on any server whose
// clients come from their own addresses, the per-IP tables hold about
// one entry per connection, so an entry's size is memory per
// connection. A Go map pads a slot to the key's alignment (16 bytes for
// an 8-byte key and a 4-byte count, 24 for protocol's 16-byte key), adds
// a control byte, grows by doubling past 7/8 full and never shrinks:
// measured at 39 and 52 bytes per entry on a 13-node run. Here a slot is
// the key and its count, unpadded (12 and 20 bytes), the table grows past
// 7/8 full as a map does, and it shrinks once it is 1/8 full, so memory
// follows the busy clients after a burst of them. It keeps its smallest
// size when empty: one client's long-polls, all answered at once and
// all polling again, take its last entry away and back at every message,
// and that must not allocate (P5).
//
// Removal shifts the entries after a freed slot back (no tombstones), so
// lookups stay short however the table churns. The hash is seeded per
// table from the runtime's random source: a client cannot choose
// addresses that pile up in one run of slots. Not safe for concurrent
// use (ClientCounts locks a shard around it).
type countTable[K comparable] struct {
	seed   maphash.Seed
	keys   []K
	counts []int32 // counts[i] == 0: slot i is free
	n      int     // entries
}

// minCountSlots is the smallest table allocated, kept once allocated: a
// shard of a table with a few busy clients pays 8 slots.
const minCountSlots = 8

// home is k's first slot.
func (t *countTable[K]) home(k K) int {
	return int(maphash.Comparable(t.seed, k) & uint64(len(t.counts)-1))
}

// find is k's slot and true, or the free slot where k would go and
// false. The table must have slots.
func (t *countTable[K]) find(k K) (int, bool) {
	mask := len(t.counts) - 1
	for i := t.home(k); ; i = (i + 1) & mask {
		if t.counts[i] == 0 {
			return i, false
		}
		if t.keys[i] == k {
			return i, true
		}
	}
}

// get is k's count, 0 when k has no entry.
func (t *countTable[K]) get(k K) int32 {
	if t.n == 0 {
		return 0
	}
	if i, ok := t.find(k); ok {
		return t.counts[i]
	}
	return 0
}

// addBelow adds d (> 0) to k's count, making its entry if it has none,
// unless the count is limit or more already: then it changes nothing and
// returns false. One probe sequence either way (a client's next
// listener, a long-poll's re-poll, is the common case).
func (t *countTable[K]) addBelow(k K, d, limit int32) bool {
	i, ok := 0, false
	if len(t.counts) > 0 {
		if i, ok = t.find(k); ok {
			if t.counts[i] >= limit {
				return false
			}
			t.counts[i] += d
			return true
		}
	}
	if limit <= 0 {
		return false
	}
	if (t.n+1)*8 > len(t.counts)*7 {
		t.resize(max(minCountSlots, 2*len(t.counts)))
		i, _ = t.find(k)
	}
	t.keys[i], t.counts[i] = k, d
	t.n++
	return true
}

// dec takes one from k's count, removing its entry at 0; nothing when k
// has no entry.
func (t *countTable[K]) dec(k K) {
	if t.n == 0 {
		return
	}
	i, ok := t.find(k)
	if !ok {
		return
	}
	if t.counts[i] > 1 {
		t.counts[i]--
		return
	}
	t.remove(i)
	if len(t.counts) > minCountSlots && t.n*8 < len(t.counts) {
		t.resize(len(t.counts) / 2)
	}
}

// remove frees slot i and moves back, into the hole, each entry of the
// run after it whose home is not between the hole and itself, so that
// every entry stays reachable from its home without free slots between.
func (t *countTable[K]) remove(i int) {
	mask := len(t.counts) - 1
	var zero K
	for j := (i + 1) & mask; t.counts[j] != 0; j = (j + 1) & mask {
		// The entry at j may fill the hole at i when i lies on its way
		// from its home to j, that is when its home is no nearer to j
		// (going forward, wrapping) than i is.
		if (j-t.home(t.keys[j]))&mask >= (j-i)&mask {
			t.keys[i], t.counts[i] = t.keys[j], t.counts[j]
			i = j
		}
	}
	t.keys[i], t.counts[i] = zero, 0
	t.n--
}

// resize moves every entry into a table of slots slots (a power of two
// above n), with a fresh seed when the table is empty.
func (t *countTable[K]) resize(slots int) {
	keys, counts := t.keys, t.counts
	if t.n == 0 {
		t.seed = maphash.MakeSeed()
	}
	t.keys, t.counts = make([]K, slots), make([]int32, slots)
	for j, c := range counts {
		if c != 0 {
			i, _ := t.find(keys[j])
			t.keys[i], t.counts[i] = keys[j], c
		}
	}
}

// each calls f with every entry.
func (t *countTable[K]) each(f func(k K, n int32)) {
	for i, c := range t.counts {
		if c != 0 {
			f(t.keys[i], c)
		}
	}
}
