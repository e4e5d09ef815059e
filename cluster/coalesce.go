package cluster

import (
	"context"
	"sync"
	"sync/atomic"
)

// readKey identifies store-node reads whose answers are interchangeable:
// the same request, Buf aside (a LightStore does not read into it).
type readKey struct {
	kind      Kind
	name      string
	byTick    bool
	tick      string
	after     uint64
	notBefore int64
	messages  int
	bytes     int
}

func keyOf(r *ReadRequest) readKey {
	return readKey{kind: r.Kind, name: r.Name, byTick: r.ByTick, tick: string(r.Tick), after: r.After,
		notBefore: r.NotBefore, messages: r.Limit.Messages, bytes: r.Limit.Bytes}
}

// coalescer makes concurrent identical reads of a light node one request
// to the store node. Many readers of one channel arrive together: the
// connections a node takes when a page loads everywhere, the long-polls
// that all re-poll from the same tick after a push, a node's share of a
// million connections opened in a few minutes. Asked one by one, their
// first reads are as many NATS round trips through a store node that
// answers them all (the 1M run: ~1M reads, timed out at the store node,
// cost Cometify streams and long-polls their first read).
//
// A read joins a request that has not been sent yet, never one already in
// flight: an answer read before a reader arrived may miss a write
// acknowledged before it arrived (which the reader, once in the
// subscriber index, does not get as a delivery either). So a key has at
// most one request in flight and one waiting behind it; the waiting one
// gathers every reader that arrives meanwhile and is sent when the one in
// flight is answered. Under load a channel's readers cost one round trip
// per round-trip time, whatever their number.
type coalescer struct {
	link *Link // sends the requests
	// sendFunc, when set, sends them instead (tests).
	sendFunc func(*ReadRequest) (ReadAnswer, error)
	mu       sync.Mutex
	keys     map[readKey]*keyReads
	// joined counts reads answered by another reader's request (metrics).
	joined atomic.Uint64
}

// keyReads is one key's request in flight and the one waiting behind it.
type keyReads struct {
	running, next *flight
}

// flight is one request to the store node and its readers.
type flight struct {
	done chan struct{} // closed when ans and err are set
	ans  ReadAnswer
	err  error
}

// do answers r, sending it (send) unless an identical request that has
// not been sent yet takes it along. The answer may be shared with other
// readers: its slices are read-only. r stays on its caller's stack and a
// read that joins another's request allocates nothing but its key's
// tick: the garbage of a node's first reads is memory too, the heap
// grows by what the collector has not caught up with.
func (c *coalescer) do(ctx context.Context, r *ReadRequest) (ReadAnswer, error) {
	k := keyOf(r)
	c.mu.Lock()
	if c.keys == nil {
		c.keys = make(map[readKey]*keyReads)
	}
	kr := c.keys[k]
	if kr == nil {
		kr = &keyReads{}
		c.keys[k] = kr
	}
	if f := kr.next; f != nil {
		c.mu.Unlock()
		c.joined.Add(1)
		<-f.done
		return f.ans, f.err
	}
	f := &flight{done: make(chan struct{})}
	prev := kr.running
	if prev == nil {
		kr.running = f
	} else {
		kr.next = f
	}
	c.mu.Unlock()
	if prev != nil {
		<-prev.done
		c.mu.Lock()
		kr.running, kr.next = f, nil // readers arriving from now wait behind f
		c.mu.Unlock()
	}
	f.ans, f.err = c.send(ctx, r)
	c.mu.Lock()
	kr.running = nil
	if kr.next == nil {
		delete(c.keys, k)
	}
	c.mu.Unlock()
	close(f.done)
	return f.ans, f.err
}

// send makes r's request. The test hook gets a copy: a request passed
// to a function value escapes, and r stays on its caller's stack.
func (c *coalescer) send(ctx context.Context, r *ReadRequest) (ReadAnswer, error) {
	if c.sendFunc != nil {
		rc := *r
		return c.sendFunc(&rc)
	}
	return c.link.readOnce(ctx, r)
}

// joinedReads is how many reads were answered by another's request.
func (c *coalescer) joinedReads() uint64 { return c.joined.Load() }
