package protocol

import (
	"net/netip"
	"sort"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// listenerCap counts live listeners per (account, client IP) for CF-L-08's
// cap: Cometify listeners and EZComet readers of the account's channels
// share one bucket (C-12). It is touched when a listener starts and when
// it ends, never per message (engine.ClientCounts: sharded, an entry
// only while its count is above zero).
type listenerCap struct {
	engine.ClientCounts[capKey]
}

// capKey names one client of one account: the account's incarnation
// (persist.Account.ID) and engine's 8-byte client key (an IPv4 address,
// or an IPv6 /64, since one IPv6 client owns a whole /64): 16 bytes, so
// an entry is 20 with its count, what a node of a cluster pays per
// busy client. A listener keeps only the client key (its acctID is the
// rest) and gives its slot back by key. An account deleted and created
// again is a new incarnation: its old listeners are closed and
// count apart meanwhile.
type capKey struct {
	acct uint64
	ip   engine.ClientKey
}

func newCapKey(acctID uint64, ip netip.Addr) capKey {
	return capKey{acct: acctID, ip: engine.ClientKeyOf(ip)}
}

// Client implements engine.CountKey.
func (k capKey) Client() engine.ClientKey { return k.ip }

// releaseHeld gives back the slot a listener of account incarnation
// acct holds for client *ip, if it holds one (*ip is not
// engine.NoClientKey), and marks it given back: a listener leaves once,
// however it goes.
func (c *listenerCap) releaseHeld(acct uint64, ip *engine.ClientKey) {
	if *ip != engine.NoClientKey {
		c.Release(capKey{acct: acct, ip: *ip})
		*ip = engine.NoClientKey
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
	c.Range(func(k capKey, n int) {
		if k.acct == acctID {
			all = append(all, ipCount{IP: k.ip.Addr(), Listeners: n})
			total += n
		}
	})
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
func (c *listenerCap) held() int { return c.Total() }
