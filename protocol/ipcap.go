package protocol

import (
	"net/netip"
	"sort"
	"sync"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// listenerCap counts live listeners per (account, client IP) for CF-L-08's
// cap: Cometify listeners and EZComet readers of the account's channels
// share one bucket (C-12). It is touched when a listener starts and when
// it ends, never per message, so sharded mutexes are cheap enough; an
// entry exists only while its count is above zero, so the table's size
// follows the number of distinct busy IPs, not of connections.
type listenerCap struct {
	shards [capShards]capShard
}

const (
	capShardBits = 6
	capShards    = 1 << capShardBits
)

type capShard struct {
	mu sync.Mutex
	m  map[capKey]int32
}

// capKey names one client of one account: the account's incarnation
// (persist.Account.ID) and engine's 8-byte client key (an IPv4 address,
// or an IPv6 /64, since one IPv6 client owns a whole /64). A node of a
// cluster sees most busy client addresses a few connections each, so an
// entry's size is memory per connection there: 16 bytes of key and a
// 4-byte count, no pointer and nothing allocated per entry. A listener
// keeps only the client key (its acctID is the rest) and gives the slot
// back by key. An account deleted and created again is a new
// incarnation: its old listeners are closed and count apart
// meanwhile.
type capKey struct {
	acct uint64
	ip   engine.ClientKey
}

func newCapKey(acctID uint64, ip netip.Addr) capKey {
	return capKey{acct: acctID, ip: engine.ClientKeyOf(ip)}
}

func (k capKey) addr() netip.Addr { return k.ip.Addr() }

func (c *listenerCap) shard(k capKey) *capShard {
	return &c.shards[k.ip.Shard(capShardBits)]
}

// acquire takes one of k's slots if fewer than limit are taken; false
// when the cap is reached. Any goroutine.
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

// release gives back one slot of k taken by acquire; each acquire is
// released once.
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

// listenerLimit is acct's listener cap per client IP (CF-L-08, C-12).
func listenerLimit(acct *persist.Account) int {
	if acct.MaxListenersPerIP <= 0 {
		return persist.DefaultMaxListenersPerIP
	}
	return acct.MaxListenersPerIP
}

// ipCount is one client address and its live listeners.
type ipCount struct {
	IP        netip.Addr
	Listeners int
}

// busiest returns the n client addresses of account incarnation acctID
// with the most listeners, most first, and the number of slots it holds
// in all.
func (c *listenerCap) busiest(acctID uint64, n int) ([]ipCount, int) {
	var all []ipCount
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if k.acct == acctID {
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
