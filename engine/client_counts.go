package engine

import (
	"math"
	"sync"
)

// FailTooManyConns is the message of the JSON 429 (Handler.Fail) a
// connection gets when its client address already has
// Options.MaxConnsPerIP connections open (C-12).
const FailTooManyConns = "too many connections from this IP"

// CountKey is a ClientCounts key: a client (ClientKey itself), or a
// client together with what else its count is kept per (protocol's
// account and client). Client picks the key's shard.
type CountKey interface {
	comparable
	Client() ClientKey
}

// Client is k: a ClientKey counts for itself.
func (k ClientKey) Client() ClientKey { return k }

// ClientCounts counts what each key holds against a cap (C-12): the
// server's open connections per client address, protocol's listeners
// per account and client. It is touched when something is taken or
// given back, never per request or message, so sharded mutexes are cheap
// enough. An entry exists only while its count is above zero, so the
// table follows the busy clients, not the connections; an entry is the
// key and a 4-byte count in its shard's countTable, nothing allocated
// apart (a node of a cluster sees most client addresses a few
// connections each, so an entry is memory per connection there). The
// zero value is ready.
type ClientCounts[K CountKey] struct {
	shards [countShards]countShard[K]
}

const (
	countShardBits = 6
	countShards    = 1 << countShardBits
)

type countShard[K CountKey] struct {
	mu sync.Mutex
	t  countTable[K]
	_  [128 - 72]byte // two cache lines per shard: loops on other cores
}

func (t *ClientCounts[K]) shard(k K) *countShard[K] {
	return &t.shards[k.Client().Shard(countShardBits)]
}

// Acquire counts one more for k if fewer than limit are counted; false,
// counting nothing, at the cap. Any goroutine.
func (t *ClientCounts[K]) Acquire(k K, limit int) bool {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.addBelow(k, 1, int32(min(limit, math.MaxInt32)))
}

// Release gives back one count of k taken by Acquire; each Acquire is
// released once.
func (t *ClientCounts[K]) Release(k K) {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.dec(k)
}

// Count is k's count.
func (t *ClientCounts[K]) Count(k K) int {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.t.get(k))
}

// Range calls f with each key and its count, one shard's lock held at a
// time (f must not call back into t).
func (t *ClientCounts[K]) Range(f func(k K, n int)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		s.t.each(func(k K, n int32) { f(k, int(n)) })
		s.mu.Unlock()
	}
}

// Total is the sum of every count.
func (t *ClientCounts[K]) Total() int {
	n := 0
	t.Range(func(_ K, c int) { n += c })
	return n
}
