package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// LightStore is what a light node's protocol takes where a single node
// takes a *persist.Store (it has protocol.Store's methods): writes and
// pushes go to the store node through a Forwarder, reads through
// Link.Read, accounts come from an AccountCache, and the methods the
// protocol calls on its event loops (account lookups, Healthy)
// answer from local state without a round trip (CFLast is asked on its
// reader pool: CFLastRead).
//
// The read methods block for one NATS round trip: the protocol calls them
// on its reader pool only (protocol/readers.go), never on a loop.
type LightStore struct {
	link     *Link
	fwd      *Forwarder
	accounts *AccountCache
	// health is nil while the store node answers pings over a connected
	// Link; else why not (C-10: /healthz 503).
	health atomic.Pointer[error]
	// misses counts the pings in a row the store node let time out (on
	// the pinger only, see ping).
	misses  int
	retried atomic.Uint64 // read requests made again after a timeout
	done    chan struct{}
	wg      sync.WaitGroup
}

// NewLightStore assembles a light node's store from its Link, the
// Forwarder made on it (its DeliveredByLink is set here) and its
// AccountCache, and starts pinging the store node every pingEvery
// (default 1 s) for Healthy.
func NewLightStore(l *Link, f *Forwarder, ac *AccountCache, pingEvery time.Duration) *LightStore {
	if pingEvery <= 0 {
		pingEvery = time.Second
	}
	f.DeliveredByLink = true
	s := &LightStore{link: l, fwd: f, accounts: ac, done: make(chan struct{})}
	s.ping()
	s.wg.Add(1)
	go s.pinger(pingEvery)
	return s
}

// Close stops the pinger (the Link, Forwarder and cache are the caller's).
func (s *LightStore) Close() {
	close(s.done)
	s.wg.Wait()
}

func (s *LightStore) pinger(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.ping()
		case <-s.done:
			return
		}
	}
}

var errNATSDown = fmt.Errorf("%w: cluster: NATS disconnected", persist.ErrStorage)

// pingMisses is how many pings in a row a store node that is only slow
// may let time out before the light node takes it for unavailable.
const pingMisses = 3

// ping records whether the store node answers. A store node that is gone
// is unavailable at once: NATS is down, or NATS knows nobody serves the
// store subject (no responders). One that answers late (busy with a burst
// of reads, on a starved machine) is still there: it is taken for
// unavailable only after pingMisses missed pings in a row, so that a
// moment of slowness does not turn every new reader of the node into a
// 503 and every waiting one into a closed connection. Writes do not wait
// for this verdict: each is refused (503) at its own deadline. Runs on
// the pinger goroutine (and once in NewLightStore, before it starts).
func (s *LightStore) ping() {
	var err error
	if !s.link.Connected() {
		err = errNATSDown
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), s.link.opts.RequestTimeout)
		err = s.link.Ping(ctx)
		cancel()
	}
	switch {
	case err == nil:
		s.misses = 0
		s.health.Store(nil)
	case err == errNATSDown || errors.Is(err, nats.ErrNoResponders):
		s.misses = pingMisses
		s.health.Store(&err)
	default:
		if s.misses++; s.misses >= pingMisses {
			s.health.Store(&err)
		}
	}
}

// Healthy is nil while NATS is connected and the store node answered the
// last ping (at most one ping interval old).
func (s *LightStore) Healthy() error {
	if !s.link.Connected() {
		return errNATSDown
	}
	if p := s.health.Load(); p != nil {
		return *p
	}
	return nil
}

// AccountByAPIKey answers from the AccountCache.
func (s *LightStore) AccountByAPIKey(k []byte) (persist.Account, bool) {
	return s.accounts.AccountByAPIKey(k)
}

// AccountByCFKey answers from the AccountCache.
func (s *LightStore) AccountByCFKey(k []byte) (persist.Account, bool) {
	return s.accounts.AccountByCFKey(k)
}

// AccountByName answers from the AccountCache.
func (s *LightStore) AccountByName(n []byte) (persist.Account, bool) {
	return s.accounts.AccountByName(n)
}

// EZWriteTo forwards w to the store node (Forwarder's contract).
func (s *LightStore) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	s.fwd.EZWriteTo(w, done)
}

// CFPushTo forwards p to the store node (Forwarder's contract).
func (s *LightStore) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	s.fwd.CFPushTo(p, done)
}

// readAttempts bounds the requests one read makes while the store node
// only answers late (see read).
const readAttempts = 3

// read asks the store node for r (Link.Read: identical reads made at the
// same time share one request). A request that timed out is made again,
// up to readAttempts in all, while the store node still counts as
// available (Healthy: NATS up, pings answered or only a few missed): a
// store node busy with a burst of first reads (a node's connections
// opened together) is slow, not gone, and a reader it answers late is
// better than one refused (a Cometify stream closed, a poll answered
// 503). One gone (no responders, NATS down) fails the read at once.
func (s *LightStore) read(r ReadRequest) (ReadAnswer, error) {
	for attempt := 1; ; attempt++ {
		a, err := s.link.Read(context.Background(), &r)
		if err == nil || attempt == readAttempts || !timedOut(err) || s.Healthy() != nil {
			return a, err
		}
		s.retried.Add(1)
	}
}

// timedOut tells a request the store node did not answer in time from
// one nobody serves or NATS refused.
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// RetriedReads is how many read requests were made again after a
// timeout (metrics).
func (s *LightStore) RetriedReads() uint64 { return s.retried.Load() }

// EZRead reads qname after tick from the store node. Blocks: reader pool
// only.
func (s *LightStore) EZRead(qname string, tick []byte, lim persist.ReadLimit) (persist.ReadResult, error) {
	a, err := s.read(ReadRequest{Kind: EZ, Name: qname, ByTick: true, Tick: tick, Limit: lim})
	return ezResult(a), err
}

// EZReadAfter reads qname after seq after from the store node. Blocks:
// reader pool only.
func (s *LightStore) EZReadAfter(qname string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error) {
	a, err := s.read(ReadRequest{Kind: EZ, Name: qname, After: after, Limit: lim})
	return ezResult(a), err
}

// EZResult converts an EZ ReadAnswer to persist's result.
func ezResult(a ReadAnswer) persist.ReadResult {
	r := persist.ReadResult{Cursor: a.Cursor, Gap: a.Gap, More: a.More}
	if len(a.Messages) > 0 {
		r.Messages = make([]persist.Message, len(a.Messages))
		for i, m := range a.Messages {
			r.Messages[i] = persist.Message{Seq: m.Seq, Tick: m.Tick, Body: m.Body, Time: m.Time}
		}
	}
	return r
}

// CFRead reads topic's pushes after after from the store node. Blocks:
// reader pool only.
func (s *LightStore) CFRead(topic []byte, after uint64, notBefore int64, lim persist.ReadLimit) (persist.CFReadResult, error) {
	a, err := s.read(ReadRequest{Kind: CF, Name: string(topic), After: after, NotBefore: notBefore, Limit: lim})
	if err != nil {
		return persist.CFReadResult{}, err
	}
	return CFResult(a), nil
}

// CFResult converts a CF ReadAnswer to persist's result.
func CFResult(a ReadAnswer) persist.CFReadResult {
	r := persist.CFReadResult{Cursor: a.Cursor, Last: a.Last, Gap: a.Gap, More: a.More}
	if len(a.Messages) > 0 {
		r.Pushes = make([]persist.CFMessage, len(a.Messages))
		for i, m := range a.Messages {
			r.Pushes[i] = persist.CFMessage{ID: m.Seq, Time: m.Time, Secret: m.Secret, Text: m.Body}
		}
	}
	return r
}

// EZChannels is username's channel table, asked of the store node
// . Blocks: the protocol asks it on its reader pool. When the store
// node cannot be reached the stats list no channels.
func (s *LightStore) EZChannels(username string) []persist.ChannelStat {
	cs, err := s.link.Channels(context.Background(), username)
	if err != nil {
		s.link.opts.Logf("cluster: channels of %s: %v", username, err)
	}
	return cs
}

// CFLast is topic's highest push id: the last delivery this node handed
// on while it follows the topic in order, else the store node's answer
// (one round trip; 0 when it cannot be asked). The protocol asks
// CFLastRead instead, on its reader pool.
func (s *LightStore) CFLast(topic []byte) uint64 {
	last, _ := s.CFLastRead(topic)
	return last
}

// CFLastRead is CFLast with the store node's failure (protocol's
// CFLastReader). Blocks: reader pool only.
func (s *LightStore) CFLastRead(topic []byte) (uint64, error) {
	if last, ok := s.link.Last(CF, string(topic)); ok {
		return last, nil
	}
	a, err := s.read(ReadRequest{Kind: CF, Name: string(topic), After: ^uint64(0),
		Limit: persist.ReadLimit{Messages: 1, Bytes: 1}})
	return a.Last, err
}
