package engine

import "sync"

// FailTooManyConns is the message of the JSON 429 (Handler.Fail) a
// connection gets when its client address already has
// Options.MaxConnsPerIP connections open (C-12).
const FailTooManyConns = "too many connections from this IP"

// ipConns counts open connections per client address, server-wide
// (across loops). It is touched when a connection opens, closes, or is
// attributed to another forwarded address, never per request otherwise,
// so sharded mutexes are cheap enough. An entry exists only while its
// count is above zero.
type ipConns struct {
	shards [ipShards]ipShard
}

const (
	ipShardBits = 6
	ipShards    = 1 << ipShardBits
)

type ipShard struct {
	mu sync.Mutex
	m  map[ClientKey]int32
	_  [64 - 16]byte // one cache line per shard: loops on other cores
}

func (t *ipConns) shard(k ClientKey) *ipShard {
	return &t.shards[k.Shard(ipShardBits)]
}

// acquire counts one more connection for k unless limit are open.
func (t *ipConns) acquire(k ClientKey, limit int) bool {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[k]
	if int(n) >= limit {
		return false
	}
	if s.m == nil {
		s.m = make(map[ClientKey]int32)
	}
	s.m[k] = n + 1
	return true
}

// release gives back one count taken by acquire.
func (t *ipConns) release(k ClientKey) {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[k]; n > 1 {
		s.m[k] = n - 1
	} else {
		delete(s.m, k)
	}
}

// count returns the connections counted for k.
func (t *ipConns) count(k ClientKey) int {
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.m[k])
}

// total returns the connections counted for every address.
func (t *ipConns) total() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, v := range s.m {
			n += int(v)
		}
		s.mu.Unlock()
	}
	return n
}
