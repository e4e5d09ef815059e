package protocol

import (
	"net/netip"
	"sort"
	"sync"
)

// listenerCap counts live Cometify listeners per (account, client IP) for
// CF-L-08's cap. It is touched when a listener starts and when it ends,
// never per message, so sharded mutexes are cheap enough; an entry exists
// only while its count is above zero, so the table's size follows the
// number of distinct busy IPs, not of connections.
type listenerCap struct {
	shards [capShards]capShard
}

const capShards = 64

type capShard struct {
	mu sync.Mutex
	m  map[capKey]int32
}

// capKey names one client of one account. The username string is the
// account table's own (no copy); the address is IPv4 as 4-in-6, or an
// IPv6 address cut to its /64, since one IPv6 client owns a whole /64.
type capKey struct {
	user string
	ip   [16]byte
}

func newCapKey(user string, ip netip.Addr) capKey {
	k := capKey{user: user}
	ip = ip.Unmap()
	k.ip = ip.As16()
	if ip.Is6() {
		clear(k.ip[8:])
	}
	return k
}

func (k capKey) addr() netip.Addr {
	a := netip.AddrFrom16(k.ip)
	if a.Is4In6() {
		return a.Unmap()
	}
	return a
}

func (c *listenerCap) shard(k capKey) *capShard {
	h := uint32(2166136261)
	for _, b := range k.ip {
		h = (h ^ uint32(b)) * 16777619
	}
	return &c.shards[h%capShards]
}

// acquire takes one of k's slots if fewer than limit are taken.
func (c *listenerCap) acquire(k capKey, limit int) bool {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[k]
	if int(n) >= limit {
		return false
	}
	if s.m == nil {
		s.m = make(map[capKey]int32)
	}
	s.m[k] = n + 1
	return true
}

// release gives back one slot taken by acquire.
func (c *listenerCap) release(k capKey) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[k]; n > 1 {
		s.m[k] = n - 1
	} else {
		delete(s.m, k)
	}
}

// ipCount is one client address and its live listeners.
type ipCount struct {
	IP        netip.Addr
	Listeners int
}

// busiest returns user's n client addresses with the most listeners,
// most first, and the number of slots user holds in all.
func (c *listenerCap) busiest(user string, n int) ([]ipCount, int) {
	var all []ipCount
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if k.user == user {
				all = append(all, ipCount{IP: k.addr(), Listeners: int(v)})
				total += int(v)
			}
		}
		s.mu.Unlock()
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Listeners != all[j].Listeners {
			return all[i].Listeners > all[j].Listeners
		}
		return all[i].IP.Less(all[j].IP)
	})
	if len(all) > n {
		all = all[:n]
	}
	return all, total
}

// held is the number of slots taken in all (tests, metrics).
func (c *listenerCap) held() int {
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, v := range s.m {
			total += int(v)
		}
		s.mu.Unlock()
	}
	return total
}
