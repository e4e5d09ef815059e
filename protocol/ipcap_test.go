package protocol

import (
	"net/netip"
	"runtime"
	"testing"
)

// TestListenerCapCounts: slots are counted per account incarnation and
// client (an IPv6 /64 is one client), the cap holds, and an entry goes
// when its last slot is given back.
func TestListenerCapCounts(t *testing.T) {
	var c listenerCap
	a := newCapKey(1, netip.MustParseAddr("10.0.0.1"))
	b6 := newCapKey(1, netip.MustParseAddr("2001:db8::1"))
	b6same := newCapKey(1, netip.MustParseAddr("2001:db8::ffff"))
	other := newCapKey(2, netip.MustParseAddr("10.0.0.1"))
	for i := 0; i < 3; i++ {
		if !c.Acquire(a, 3) {
			t.Fatalf("slot %d of 3 refused", i+1)
		}
	}
	if c.Acquire(a, 3) {
		t.Fatal("a fourth slot was given under a cap of 3")
	}
	if !c.Acquire(other, 3) {
		t.Fatal("another account's slot for the same address was refused")
	}
	if !c.Acquire(b6, 1) || c.Acquire(b6same, 1) {
		t.Fatal("two addresses of one IPv6 /64 should share one client's cap")
	}
	if ips, total := c.busiest(1, 10); total != 4 || len(ips) != 2 || ips[0].Listeners != 3 || ips[0].IP != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("busiest(1) = %v, %d; want 10.0.0.1 with 3 first, 4 in all", ips, total)
	}
	c.Release(a)
	if !c.Acquire(a, 3) {
		t.Fatal("a slot given back was not free again")
	}
	for _, k := range []capKey{a, a, a, other, b6} {
		c.Release(k)
	}
	if n := c.held(); n != 0 {
		t.Fatalf("%d slots held after every one was given back", n)
	}
	c.Range(func(k capKey, n int) { t.Fatalf("entry %v (%d) outlived its last slot", k, n) })
}

// TestListenerCapBytesPerClient: a node of a cluster sees most busy
// client addresses a few connections each, so an entry of the table is
// memory per connection there. Entries are a 16-byte key and a 4-byte
// count in the shard's table, unpadded, nothing allocated per entry (a
// pointer to a separate slot cost ~98 B per client, a Go map's padded
// slot ~52 B on a 13-node run): at most 20 B over the table's lowest
// load after growing (7/16), whatever the shards' sizes.
func TestListenerCapBytesPerClient(t *testing.T) {
	const clients = 8_000 // what each of 13 nodes sees at 200,000 connections, 20 per address
	var c listenerCap
	keys := make([]capKey, clients)
	for i := range keys {
		keys[i] = newCapKey(7, netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, k := range keys {
		c.Acquire(k, 30)
		c.Acquire(k, 30)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / clients
	t.Logf("%.1f B per client", per)
	if want := 20 * 16 / 7.0; per > want {
		t.Errorf("%.1f B per busy client in the listener table, want at most %.1f", per, want)
	}
	if n := c.held(); n != 2*clients {
		t.Fatalf("held %d, want %d", n, 2*clients)
	}
	runtime.KeepAlive(keys)
}
