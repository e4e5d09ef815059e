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
	m  map[capKey]*capSlot
}

// capSlot is one bucket: a listener holds a pointer to it (one word per
// connection) and gives it back with release. Fields are guarded by the
// shard's mutex.
type capSlot struct {
	key capKey
	n   int32
}

// capKey names one client of one account. The username string is the
// account table's own (no copy); the client is engine's 8-byte key (an
// IPv4 address, or an IPv6 /64, since one IPv6 client owns a whole /64):
// a node sees most busy client addresses, and each is an entry here.
type capKey struct {
	user string
	ip   engine.ClientKey
}

func newCapKey(user string, ip netip.Addr) capKey {
	return capKey{user: user, ip: engine.ClientKeyOf(ip)}
}

func (k capKey) addr() netip.Addr { return k.ip.Addr() }

func (c *listenerCap) shard(k capKey) *capShard {
	return &c.shards[k.ip.Shard(capShardBits)]
}

// acquire takes one of k's slots if fewer than limit are taken; nil when
// the cap is reached. Any goroutine.
func (c *listenerCap) acquire(k capKey, limit int) *capSlot {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	if e == nil {
		if limit < 1 {
			return nil
		}
		if s.m == nil {
			s.m = make(map[capKey]*capSlot)
		}
		e = &capSlot{key: k}
		s.m[k] = e
	} else if int(e.n) >= limit {
		return nil
	}
	e.n++
	return e
}

// release gives back one slot taken by acquire; each acquire is released
// once.
func (c *listenerCap) release(e *capSlot) {
	s := c.shard(e.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.n--; e.n <= 0 {
		delete(s.m, e.key)
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

// busiest returns user's n client addresses with the most listeners,
// most first, and the number of slots user holds in all.
func (c *listenerCap) busiest(user string, n int) ([]ipCount, int) {
	var all []ipCount
	total := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if k.user == user {
				all = append(all, ipCount{IP: k.addr(), Listeners: int(e.n)})
				total += int(e.n)
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
		for _, e := range s.m {
			total += int(e.n)
		}
		s.mu.Unlock()
	}
	return total
}
