package persist

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The commit pipeline. The committer goroutine builds a group of writes
// into one Pebble batch and applies it without waiting for its fsync
// (DB.ApplyNoSyncWait): Pebble's WAL writer syncs it, together with any
// group applied meanwhile. The committer goes straight on to build the
// next group while the syncer goroutine waits for this one's fsync
// (Batch.SyncWait), then publishes it to readers and runs its completions.
// Groups leave the syncer in the order they were applied, so completions
// keep acceptance order and an `ok` still means synced (C-09).
//
// A group's state therefore exists twice: as applied (what the next group
// builds on; Pebble already serves it to the committer's own lookups) and
// as published (what readers and listeners see, only once synced). The
// committer keeps the applied state of every channel and topic that an
// unpublished group touched in its pending maps; the rest is equal to the
// published state. Sweeps and account changes, rare and touching many
// channels at once, first wait for every group in flight (quiesce).

// maxInFlight is how many groups may be applied and not yet published.
// Pebble syncs every group applied during one fsync with the next one, so
// a few are enough to keep the committer busy while the disk syncs.
const maxInFlight = 4

// group is one commit on its way through the pipeline.
type group struct {
	seq uint64
	ops []groupOp
	// b is the applied batch the syncer waits for, nil when nothing was
	// applied or the batch is already closed (SyncNone).
	b *pebble.Batch
	// err, set by the committer, fails every request of the group: the
	// Store had failed, Close gave up on the disk, or the apply failed.
	err error
	// watched is true when the committer began a diskWatch unit for the
	// group, which the syncer ends.
	watched bool
	start   time.Time

	chans  []chanPub
	topics []topicPub
	counts groupCounts
}

// chanPub is a channel's state as a group leaves it, for publish.
type chanPub struct {
	pc          *pendingChan // released once the last group touching it is published
	ch          *channel
	isNew       bool // ch enters the channels map
	first, last uint64
}

// topicPub is a topic's state as a group leaves it, for publish.
type topicPub struct {
	pt               *pendingTopic
	t                *cfTopic // nil: the group only refused pushes to a topic that does not exist
	isNew            bool
	last, droppedMax uint64
	lastSecret       int64
}

// groupCounts are a group's outcomes, added to the Store's counters when
// it is published.
type groupCounts struct {
	appended, dups, conflicts, flushes, dropped, flushed, revocations uint64
	cfPushes, cfDups, cfConflicts, cfSecretReplays, cfNoncesReused    uint64
}

// newGroup returns an unused group for the next commit, waiting for the
// syncer to hand one back when maxInFlight are in flight.
func (c *committer) newGroup() *group {
	c.collect()
	if len(c.idle) == 0 && c.outstanding+len(c.idle) < maxInFlight {
		c.idle = append(c.idle, new(group))
	}
	for len(c.idle) == 0 {
		c.recycle(<-c.s.recycled)
	}
	g := c.idle[len(c.idle)-1]
	c.idle = c.idle[:len(c.idle)-1]
	c.seq++
	g.seq = c.seq
	return g
}

// collect takes back, without waiting, the groups the syncer is done
// with.
func (c *committer) collect() {
	for {
		select {
		case g := <-c.s.recycled:
			c.recycle(g)
		default:
			return
		}
	}
}

// quiesce waits until every group in flight is published: then the
// pending maps are empty and the published state is the applied one.
func (c *committer) quiesce() {
	for c.outstanding > 0 {
		c.recycle(<-c.s.recycled)
	}
}

// send hands g to the syncer. It never blocks: newGroup keeps at most
// maxInFlight groups out, and the queue holds that many.
func (c *committer) send(g *group) {
	c.outstanding++
	c.s.syncq <- g
}

// recycle releases what published group g held: the pending state of
// channels and topics no later group touched, and g itself.
func (c *committer) recycle(g *group) {
	c.outstanding--
	for i := range g.chans {
		if pc := g.chans[i].pc; pc.group == g.seq {
			c.releaseChan(pc)
		}
	}
	for i := range g.topics {
		if pt := g.topics[i].pt; pt.group == g.seq {
			c.releaseTopic(pt)
		}
	}
	clear(g.chans)
	clear(g.topics)
	g.chans, g.topics = g.chans[:0], g.topics[:0]
	g.b, g.err, g.watched, g.counts = nil, nil, false, groupCounts{}
	c.idle = append(c.idle, g)
}

// seal moves the state the group being built leaves into g, for publish,
// and starts the next group's view from it: the pending channels and
// topics stay in the pending maps, their messages and pushes now in
// Pebble.
func (c *committer) seal(g *group) {
	for _, pc := range c.touched {
		isNew := pc.ch == nil
		if isNew {
			pc.ch = &channel{qname: pc.qname} // pending made it a copy
		}
		pc.ch.floor = pc.floor // the committer's own field: no lock
		g.chans = append(g.chans, chanPub{pc: pc, ch: pc.ch, isNew: isNew, first: pc.first, last: pc.last})
		clear(pc.msgs)
		pc.msgs = pc.msgs[:0]
		clear(pc.tickIdx)
	}
	c.touched = c.touched[:0]
	cb := &c.cf
	for _, pt := range cb.touched {
		isNew := pt.t == nil && pt.last > 0
		if isNew {
			pt.t = &cfTopic{name: pt.name} // pendingTopic made it a copy
		}
		g.topics = append(g.topics, topicPub{pt: pt, t: pt.t, isNew: isNew, last: pt.last, droppedMax: pt.droppedMax, lastSecret: pt.lastSecret})
		pt.committed = pt.last
		clear(pt.pushes)
		pt.pushes = pt.pushes[:0]
	}
	cb.touched = cb.touched[:0]
	clear(cb.secrets)
	clear(cb.nonces)
	g.counts = groupCounts{
		appended: c.appended, dups: c.dups, conflicts: c.conflicts, flushes: c.flushes,
		dropped: c.dropped, flushed: c.flushed, revocations: c.revocations,
		cfPushes: cb.pushes, cfDups: cb.dups, cfConflicts: cb.conflicts,
		cfSecretReplays: cb.secretReplays, cfNoncesReused: cb.noncesReused,
	}
	c.appended, c.dups, c.conflicts, c.flushes, c.dropped, c.flushed, c.revocations = 0, 0, 0, 0, 0, 0, 0
	cb.pushes, cb.dups, cb.conflicts, cb.secretReplays, cb.noncesReused = 0, 0, 0, 0, 0
}

// syncLoop is the syncer goroutine: it completes the groups in the order
// the committer applied them.
func (s *Store) syncLoop() {
	defer close(s.syncerDone)
	for g := range s.syncq {
		s.complete(g)
		s.recycled <- g
	}
}

// complete waits for g's fsync, publishes g unless it or an earlier group
// failed, and runs its completions.
func (s *Store) complete(g *group) {
	err := g.err
	if g.b != nil {
		serr := s.guard(g.b.SyncWait)
		s.stats.observeSync(time.Since(g.start))
		if serr == nil {
			_ = g.b.Close()
		} // else Pebble may still hold the batch: never reuse it
		g.b = nil
		if serr != nil {
			s.fail(serr)
			err = fmt.Errorf("persist: commit %d writes: %w", len(g.ops), serr)
		}
	}
	if g.watched {
		s.watch.end()
	}
	if err == nil {
		// A group applied after one that failed is not trusted either.
		err = s.errFailed()
	}
	if err == nil {
		s.publish(g)
	}
	s.finish(g, err)
}

// publish makes g's state visible to readers and counts its outcomes.
func (s *Store) publish(g *group) {
	if len(g.chans) > 0 {
		s.chanMu.Lock()
		for i := range g.chans {
			p := &g.chans[i]
			if p.isNew {
				s.channels[p.ch.qname] = p.ch
			}
			p.ch.first, p.ch.last = p.first, p.last
		}
		s.chanMu.Unlock()
	}
	for i := range g.topics {
		p := &g.topics[i]
		if p.t == nil {
			continue
		}
		p.t.last.Store(p.last)
		p.t.droppedMax.Store(p.droppedMax)
		p.t.lastSecret.Store(p.lastSecret)
		if p.isNew {
			s.topicMu.Lock()
			s.topics[p.t.name] = p.t
			s.topicMu.Unlock()
		}
	}
	st, n := &s.stats, &g.counts
	st.appended.Add(n.appended)
	st.duplicates.Add(n.dups)
	st.conflicts.Add(n.conflicts)
	st.flushes.Add(n.flushes)
	st.droppedByRetention.Add(n.dropped)
	st.droppedByFlush.Add(n.flushed)
	st.revoked.Add(n.revocations)
	st.cfPushes.Add(n.cfPushes)
	st.cfDuplicates.Add(n.cfDups)
	st.cfConflicts.Add(n.cfConflicts)
	st.cfSecretReplays.Add(n.cfSecretReplays)
	st.cfNoncesReused.Add(n.cfNoncesReused)
}

// finish completes every op of g in order (a non-nil err overrides each
// outcome), then calls Options.AfterBatch.
func (s *Store) finish(g *group, err error) {
	st := &s.stats
	st.batches.Add(1)
	st.batchSizeSum.Add(uint64(len(g.ops)))
	for i, o := range g.ops {
		g.ops[i] = nil
		o.complete(st, err)
	}
	g.ops = g.ops[:0]
	if f := s.opts.AfterBatch; f != nil {
		f()
	}
}
