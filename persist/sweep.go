package persist

import (
	"bytes"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Bounds on one sweep pass, so that the committer (which runs the sweep
// between batches) never stalls writes for long.
const (
	sweepMaxMessages = 10000 // age-expired messages deleted per pass
	sweepMaxTicks    = 10000 // tick memories examined per pass
)

// housekeeping is the Store's timer goroutine: it asks the committer for
// a retention sweep every SweepInterval (unless negative) and, while the
// Store is failed, logs so every failLogEvery.
func (s *Store) housekeeping() {
	defer close(s.sweeperDone)
	var sweeps <-chan time.Time
	if s.opts.SweepInterval > 0 {
		t := time.NewTicker(s.opts.SweepInterval)
		defer t.Stop()
		sweeps = t.C
	}
	logs := time.NewTicker(s.opts.failLogEvery)
	defer logs.Stop()
	for {
		select {
		case <-s.sweeperStop:
			return
		case <-sweeps:
			s.sweep()
		case <-logs.C:
			if s.errFailed() != nil {
				s.logFailed()
			}
		}
	}
}

// sweep runs one bounded retention pass on the committer goroutine and
// waits for it: age-expired messages (EZ-W-09) and pushes (CF-P-08) are
// deleted with their CF-P-09 records, CF-P-10 nonces older than
// NonceMemory too, and tick memories of dropped messages older than
// TickMemory are forgotten. A
// no-op after Close; Close does not wait for a pass stuck on the disk.
func (s *Store) sweep() {
	if s.closed.Load() {
		return
	}
	ack := make(chan struct{})
	select {
	case s.sweeps <- ack:
	case <-s.sweeperStop:
		return
	}
	select {
	case <-ack:
	case <-s.sweeperStop:
	}
}

// sweep runs on the committer goroutine, which is the only writer of
// channel metadata, so it reads s.channels without chanMu.
func (c *committer) sweep() {
	s := c.s
	if s.errFailed() != nil || !s.watch.begin() {
		return
	}
	defer s.watch.end()
	now := s.opts.Now().UnixNano()
	if err := c.sweepAged(now - int64(s.opts.EZMaxAge)); err != nil {
		s.opts.Logf("persist: sweep expired messages: %v", err)
		return
	}
	if err := c.sweepCF(now - int64(s.opts.CFRetain)); err != nil {
		s.opts.Logf("persist: sweep expired pushes: %v", err)
		return
	}
	if err := c.sweepRecords(kindSecretExpiry, kindSecret, now-int64(s.opts.CFRetain)); err != nil {
		s.opts.Logf("persist: sweep expired secret records: %v", err)
		return
	}
	// A nonce is remembered while younger than NonceMemory: one exactly
	// that old is expired.
	if err := c.sweepRecords(kindNonceExpiry, kindNonce, now-int64(NonceMemory)+1); err != nil {
		s.opts.Logf("persist: sweep expired nonces: %v", err)
		return
	}
	if err := c.sweepTicks(now); err != nil {
		s.opts.Logf("persist: sweep tick memory: %v", err)
	}
}

// sweepAged deletes, per channel, the prefix of messages older than cutoff.
func (c *committer) sweepAged(cutoff int64) error {
	s := c.s
	g := c.newGroup() // after quiesce: the pending maps are empty
	c.outstanding++   // recycled below
	defer c.recycle(g)
	defer func() {
		if len(g.chans) == 0 {
			c.reset() // nothing sealed: forget what was touched
		}
	}()
	lo, hi := kindBounds(kindQueue)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	budget := uint64(sweepMaxMessages)
	for qname, ch := range s.channels {
		if budget == 0 {
			break
		}
		if ch.first > ch.last {
			continue
		}
		end := ch.first // first message to keep
		c.key = queueKey(c.key[:0], qname, ch.first)
		for ok := it.SeekGE(c.key); ok && end <= ch.last && end-ch.first < budget; ok = it.Next() {
			k := it.Key()
			if len(k) != len(c.key) || !bytes.Equal(k[:len(k)-8], c.key[:len(c.key)-8]) {
				break
			}
			t, _, _, valid := decodeMessage(it.Value())
			if valid && t >= cutoff {
				break
			}
			end = idFromKey(k) + 1
		}
		if end > ch.first {
			pc := c.pending(qname)
			pc.first = end
			budget -= end - ch.first
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if len(c.touched) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	var dropped uint64
	for _, pc := range c.touched {
		dropped += pc.first - pc.ch.first
		c.dropTo(b, pc, 1)
		c.setMeta(b, pc)
	}
	if err := s.applyBatch(b); err != nil {
		s.fail(err)
		return err
	}
	c.dropped = dropped
	c.seal(g)
	s.publish(g)
	return nil
}

// sweepTicks examines up to sweepMaxTicks tick memories from where the last
// pass stopped and deletes those of dropped messages written more than
// TickMemory ago.
func (c *committer) sweepTicks(now int64) error {
	s := c.s
	lo, hi := kindBounds(kindTick)
	if len(s.tickSweepFrom) > 0 {
		lo = s.tickSweepFrom
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	forget := now - int64(s.opts.TickMemory)
	n, ok := 0, it.First()
	for ; ok && n < sweepMaxTicks; ok = it.Next() {
		n++
		k := it.Key()
		end := bytes.IndexByte(k[2:], 0)
		seq, t, valid := decodeTick(it.Value())
		if end < 0 || !valid {
			_ = b.Delete(k, nil)
			continue
		}
		if t > forget {
			continue
		}
		ch := s.channels[string(k[2:2+end])]
		if ch == nil || seq < ch.first || seq > ch.last {
			_ = b.Delete(k, nil)
		}
	}
	if ok {
		s.tickSweepFrom = append(s.tickSweepFrom[:0], it.Key()...)
	} else {
		s.tickSweepFrom = s.tickSweepFrom[:0]
	}
	if err := it.Close(); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	forgotten := uint64(b.Count())
	if err := s.applyBatch(b); err != nil {
		s.fail(err)
		return err
	}
	s.stats.ticksForgotten.Add(forgotten)
	return nil
}

// cfDrop is a topic's new droppedMax decided by a sweep.
type cfDrop struct {
	t  *cfTopic
	to uint64
}

// sweepCF deletes, per topic, the pushes accepted before cutoff. They are
// a prefix of the retained ids, since ids increase in acceptance order.
func (c *committer) sweepCF(cutoff int64) error {
	s := c.s
	lo, hi := kindBounds(kindCFPush)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	drops := c.cf.drops[:0]
	budget, dropped := sweepMaxMessages, uint64(0)
	// The committer is the only writer of s.topics and of every topic's
	// counters.
	for name, t := range s.topics {
		if budget == 0 {
			break
		}
		last, from := t.last.Load(), t.droppedMax.Load()
		if from >= last {
			continue
		}
		c.key = cfPushKey(c.key[:0], name, from+1)
		prefix := c.key[:len(c.key)-8]
		to := from
		for ok := it.SeekGE(c.key); ok && budget > 0; ok = it.Next() {
			k := it.Key()
			if len(k) != len(c.key) || !bytes.HasPrefix(k, prefix) {
				break
			}
			tm, _, _, valid := decodeCFPush(it.Value())
			if valid && tm >= cutoff {
				break
			}
			to = idFromKey(k)
			budget--
			dropped++
		}
		if to == from {
			continue
		}
		c.val = cfPushKey(c.val[:0], name, to+1)
		_ = b.DeleteRange(c.key, c.val, nil)
		c.key = cfMetaKey(c.key[:0], name)
		c.val = encodeMeta(c.val[:0], last, to)
		_ = b.Set(c.key, c.val, nil)
		drops = append(drops, cfDrop{t: t, to: to})
	}
	c.cf.drops = drops[:0]
	if err := it.Close(); err != nil {
		return err
	}
	if len(drops) == 0 {
		return nil
	}
	// Publish before deleting: a CFRead that loads droppedMax after
	// creating its iterator then either sees the pushes or the gap.
	// Should the batch fail, the Store fails closed and reads refuse.
	for _, d := range drops {
		d.t.droppedMax.Store(d.to)
	}
	clear(drops)
	if err := s.applyBatch(b); err != nil {
		s.fail(err)
		return err
	}
	s.stats.cfDropped.Add(dropped)
	return nil
}
