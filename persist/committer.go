package persist

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// op is one unit of work in the committer's queue: an EZComet write or a
// Cometify push (a groupOp, built into a group with the others queued
// beside it) or an account change (run alone, between groups).
type op interface {
	// complete hands the outcome to the caller, a non-nil err overriding
	// it, and releases the op. Writes and pushes complete on the syncer
	// goroutine, in queue order.
	complete(st *storeCounters, err error)
}

// groupOp is an op built into a group.
type groupOp interface {
	op
	// build adds the op's mutations to b, as if b commits, and records
	// the outcome; now is the group's time (Unix ns).
	build(c *committer, b *pebble.Batch, now int64)
}

// ezOp is one EZWrite in the queue; pooled, so that queueing one
// allocates nothing.
type ezOp struct {
	w    EZWrite
	done WriteCompletion
	res  EZWriteResult
}

var ezOpPool = sync.Pool{New: func() any { return new(ezOp) }}

func (o *ezOp) build(c *committer, b *pebble.Batch, now int64) {
	c.buildEZ(b, o, now, now-int64(c.s.opts.EZMaxAge))
}

func (o *ezOp) complete(st *storeCounters, err error) {
	res := o.res
	if err != nil {
		res = EZWriteResult{Err: err}
		st.errors.Add(1)
	} else if res.Err == nil {
		st.writesCommitted.Add(1)
	}
	done := o.done
	*o = ezOp{}
	ezOpPool.Put(o)
	done.WriteDone(res)
}

// WriteCompletion receives an EZWrite's outcome (see EZWriteTo for when and
// on which goroutine). A caller that keeps one object per write passes it
// with EZWriteTo and allocates no closure.
type WriteCompletion interface {
	WriteDone(EZWriteResult)
}

// completionFunc adapts a function to WriteCompletion; a func value is one
// pointer, so the conversion does not allocate.
type completionFunc func(EZWriteResult)

func (f completionFunc) WriteDone(r EZWriteResult) { f(r) }

// EZWrite is EZWriteTo with a function as its completion (tests, tools).
func (s *Store) EZWrite(w EZWrite, done func(EZWriteResult)) {
	s.EZWriteTo(w, completionFunc(done))
}

// EZWriteTo queues w for the committer and returns without waiting for I/O;
// done is called exactly once with the outcome.
//
// Ownership: the Store reads w.Tick and w.Body until done is called, so the
// caller must not touch them before then; with w.NewTick it writes the
// generated tick into w.Tick, so the caller must not read it either, and
// no one else may share its bytes. For an appended message,
// EZWriteResult.Msg.Tick and .Body are w's own slices; for a duplicate they
// are fresh copies.
//
// done runs on the syncer goroutine (pipeline.go), in acceptance order,
// after the group holding w is committed (synced under SyncAlways) and
// published: EZRead and EZLastSeq already see the message. Then
// Options.AfterBatch runs once for the group. done must not block, must
// not panic, and must not write itself (hand the result to an event loop
// instead): every later completion waits for it.
//
// EZWriteTo never blocks: a write it cannot queue calls done on the
// caller's goroutine before EZWriteTo returns, with ErrClosed after Close,
// an error wrapping ErrStorage when the Store is failed or stalled
// (Healthy) or Options.WriteQueue writes are already waiting, or an error
// naming an invalid qname or tick.
//
// The server calls it with one object per write as the completion, so
// that no closure is allocated.
func (s *Store) EZWriteTo(w EZWrite, done WriteCompletion) {
	if err := checkWrite(&w); err != nil {
		done.WriteDone(EZWriteResult{Err: err})
		return
	}
	o := ezOpPool.Get().(*ezOp)
	o.w, o.done = w, done
	if err := s.enqueue(o); err != nil {
		*o = ezOp{}
		ezOpPool.Put(o)
		done.WriteDone(EZWriteResult{Err: err})
	}
}

// enqueue hands o to the committer without blocking. When it cannot (see
// EZWrite) it returns why; o is then still the caller's.
func (s *Store) enqueue(o op) error {
	// closeMu, held for reading, keeps Close from closing the channel
	// between the check and the send.
	s.closeMu.RLock()
	err := s.Healthy()
	if err == nil {
		select {
		case s.writes <- o:
		default:
			err = errQueueFull
		}
	}
	s.closeMu.RUnlock()
	if err != nil {
		if err != ErrClosed {
			s.stats.refused.Add(1)
		}
	}
	return err
}

func checkWrite(w *EZWrite) error {
	switch {
	case w.QName == "" || len(w.QName) > maxQNameLen || strings.IndexByte(w.QName, 0) >= 0:
		return fmt.Errorf("persist: bad qname %q", w.QName)
	case w.Flush:
		return nil
	case len(w.Tick) == 0 || len(w.Tick) > maxTickLen:
		return fmt.Errorf("persist: tick length %d not in 1..%d", len(w.Tick), maxTickLen)
	}
	return nil
}

// pendingMsg is a message appended by the batch being built.
type pendingMsg struct {
	seq  uint64
	time int64
	tick []byte
	body []byte
}

// pendingChan is a channel's state as the batch being built leaves it;
// it is published to the channel only if the batch commits.
type pendingChan struct {
	ch          *channel // nil for a channel this batch creates
	qname       string
	first, last uint64
	// floor is channel.floor as the batch leaves it.
	floor   uint64
	msgs    []pendingMsg
	tickIdx map[string]int // tick → index in msgs of its newest append; built past linearTicks
	// group is the last group that touched the channel: its state stays
	// here, as applied, until that group is published (pipeline.go).
	group uint64
	// meta says the group must write the channel's metadata key: it
	// creates the channel, flushes it or moves its floor (appends need
	// not: see Store.loadChannel).
	meta bool
}

// linearTicks is how many appends per channel and batch are searched
// linearly before a tick index map is worth its allocations.
const linearTicks = 8

func (pc *pendingChan) findTick(tick []byte) (*pendingMsg, bool) {
	if len(pc.msgs) <= linearTicks {
		for i := len(pc.msgs) - 1; i >= 0; i-- {
			if bytes.Equal(pc.msgs[i].tick, tick) {
				return &pc.msgs[i], true
			}
		}
		return nil, false
	}
	if pc.tickIdx == nil {
		pc.tickIdx = make(map[string]int, 2*len(pc.msgs))
	}
	if len(pc.tickIdx) == 0 {
		for i := range pc.msgs {
			pc.tickIdx[string(pc.msgs[i].tick)] = i
		}
	}
	i, ok := pc.tickIdx[string(tick)]
	if !ok {
		return nil, false
	}
	return &pc.msgs[i], true
}

func (pc *pendingChan) add(m pendingMsg) {
	pc.msgs = append(pc.msgs, m)
	if len(pc.tickIdx) > 0 {
		pc.tickIdx[string(m.tick)] = len(pc.msgs) - 1
	}
}

// committer is the state of the committer goroutine; nothing else touches
// it.
type committer struct {
	s       *Store
	ops     []groupOp
	pend    map[string]*pendingChan
	touched []*pendingChan // in first-touch order; reused across batches
	free    []*pendingChan
	key     []byte
	val     []byte

	// accounts is the account table as the batch being built sees it:
	// account changes run between batches.
	accounts *accountTable

	appended, dups, conflicts, flushes, dropped, flushed, revocations uint64

	cf cfBatch

	// The pipeline (pipeline.go): seq numbers groups; idle are groups
	// ready for reuse, outstanding those handed to the syncer.
	seq         uint64
	idle        []*group
	outstanding int

	hold *holdHook // Store.testHold, due after this group
}

func (s *Store) commitLoop() {
	defer close(s.committerDone)
	c := &committer{s: s, pend: make(map[string]*pendingChan)}
	c.cf.pend = make(map[string]*pendingTopic)
	c.cf.secrets = make(map[secretRef]struct{})
	c.cf.nonces = make(map[nonceRef]struct{})
	for {
		select {
		case o, ok := <-s.writes:
			if !ok {
				c.shutdown()
				return
			}
			for o != nil {
				if ch, isAcct := o.(*accountChange); isAcct {
					c.quiesce()
					ch.complete(&s.stats, c.applyAccountChange(ch))
					break
				}
				c.ops = append(c.ops[:0], o.(groupOp))
				next, open := c.drain()
				c.commit()
				if h := c.hold; h != nil {
					c.hold = nil
					h.wait()
				}
				if !open {
					c.shutdown()
					return
				}
				o = next // an account change that ended the batch
			}
		case ack := <-s.sweeps:
			c.quiesce()
			c.sweep()
			close(ack)
		}
	}
}

// shutdown syncs the WAL and closes Pebble once every queued write was
// answered, unless Close gave up on a stalled disk meanwhile.
func (c *committer) shutdown() {
	s := c.s
	c.quiesce()
	close(s.syncq)
	<-s.syncerDone
	if !s.watch.begin() {
		return
	}
	defer s.watch.end()
	var err error
	if s.failed.Load() == nil {
		err = s.guard(func() error { return s.db.LogData(nil, pebble.Sync) })
	}
	if cerr := s.closeDB(); err == nil {
		err = cerr
	}
	s.closeErr = err
}

// drain adds every write already waiting, up to MaxBatch. An account
// change ends the batch: drain returns it as next, to run once the batch
// is committed. open is false once the write channel is closed.
func (c *committer) drain() (next op, open bool) {
	for len(c.ops) < c.s.opts.MaxBatch {
		select {
		case o, ok := <-c.s.writes:
			if !ok {
				return nil, false
			}
			gop, inGroup := o.(groupOp)
			if !inGroup {
				return o, true
			}
			c.ops = append(c.ops, gop)
		default:
			return nil, true
		}
	}
	return nil, true
}

// commit builds one Pebble batch from c.ops, applies it and hands it to
// the syncer, which completes every request once it is synced.
func (c *committer) commit() {
	s := c.s
	g := c.newGroup()
	g.ops, c.ops = c.ops, g.ops[:0]
	if err := s.errFailed(); err != nil {
		g.err = err
		c.send(g)
		return
	}
	if !s.watch.begin() {
		g.err = ErrClosed // Close gave up on a stalled disk
		c.send(g)
		return
	}
	g.watched = true
	c.accounts = s.accounts.Load()
	now := s.opts.Now().UnixNano()
	b := s.db.NewBatch()
	for _, o := range g.ops {
		o.build(c, b, now)
	}
	for _, pc := range c.touched {
		if pc.meta {
			c.setMeta(b, pc)
		}
	}
	c.setTopicMeta(b)
	c.seal(g)
	if h := s.testHold.Load(); h != nil {
		for _, o := range g.ops {
			if w, ok := o.(*ezOp); ok && w.w.QName == h.qname && s.testHold.CompareAndSwap(h, nil) {
				c.hold = h
				break
			}
		}
	}

	if faultAckFirst {
		c.commitAckFirst(g, b)
		return
	}

	g.start = time.Now()
	var err error
	switch {
	case b.Empty():
		_ = b.Close()
	case s.wopt.Sync:
		// The syncer waits for the fsync and closes b.
		if err = s.guard(func() error { return s.db.ApplyNoSyncWait(b, s.wopt) }); err == nil {
			g.b = b
		}
	default:
		if err = s.applyBatch(b); err == nil {
			_ = b.Close()
		}
	}
	if err != nil {
		// Pebble may still hold b: it is never closed or reused.
		s.fail(err)
		g.err = fmt.Errorf("persist: commit %d writes: %w", len(g.ops), err)
	}
	c.send(g)
}

// commitAckFirst is commit with the planted fault of the build tag
// halley_fault_ackfirst: acknowledge before anything is on disk, then
// leave a window for kill -9.
func (c *committer) commitAckFirst(g *group, b *pebble.Batch) {
	s := c.s
	defer b.Close()
	s.watch.end()
	c.quiesce()
	c.outstanding++ // recycled below, never sent
	defer c.recycle(g)
	s.finish(g, nil)
	time.Sleep(faultAckFirstDelay)
	if !s.watch.begin() {
		return
	}
	err := s.applyBatch(b)
	s.watch.end()
	if err != nil {
		s.fail(err)
		return
	}
	s.publish(g)
}

// applyBatch commits b in the Store's sync mode.
func (s *Store) applyBatch(b *pebble.Batch) error {
	start := time.Now()
	err := s.guard(func() error { return s.db.Apply(b, s.wopt) })
	if s.wopt.Sync {
		s.stats.observeSync(time.Since(start))
	}
	return err
}

// pending returns the batch's view of channel qname.
func (c *committer) pending(qname string) *pendingChan {
	if pc, ok := c.pend[qname]; ok {
		if pc.group != c.seq { // carried over from a group in flight
			pc.group = c.seq
			pc.meta = false
			c.touched = append(c.touched, pc)
		}
		return pc
	}
	var pc *pendingChan
	if n := len(c.free); n > 0 {
		pc, c.free = c.free[n-1], c.free[:n-1]
	} else {
		pc = new(pendingChan)
	}
	c.s.chanMu.RLock()
	ch := c.s.channels[qname]
	c.s.chanMu.RUnlock()
	if ch != nil {
		pc.ch, pc.qname, pc.first, pc.last, pc.floor = ch, ch.qname, ch.first, ch.last, ch.floor
	} else {
		// A copy: qname is the write's own, which its writer reuses
		// once the write completed, before this entry is released.
		pc.ch, pc.qname, pc.first, pc.last, pc.floor = nil, strings.Clone(qname), 1, 0, 1
	}
	pc.group = c.seq
	pc.meta = ch == nil
	c.pend[pc.qname] = pc
	c.touched = append(c.touched, pc)
	return pc
}

// buildEZ adds o's mutations to b and sets o.res as if b commits.
func (c *committer) buildEZ(b *pebble.Batch, o *ezOp, now, cutoff int64) {
	w := &o.w
	if c.revoked(w.QName, '-', w.AccountID) {
		c.revocations++
		o.res = EZWriteResult{Err: ErrRevoked}
		return
	}
	pc := c.pending(w.QName)
	if w.Flush {
		if pc.first <= pc.last {
			c.flushed += pc.last - pc.first + 1
		}
		pc.first = pc.last + 1
		pc.meta = true
		c.dropTo(b, pc, 1)
		c.flushes++
		o.res = EZWriteResult{}
		return
	}

	// EZ-W-07: is the tick still queued? This batch's own appends first,
	// they supersede whatever the disk says about the tick. A tick the
	// committer generates is new.
	if !w.NewTick {
		if m, ok := pc.findTick(w.Tick); ok {
			if m.seq >= pc.first && m.time >= cutoff {
				c.answerQueued(o, m.seq, m.time, m.tick, m.body)
				return
			}
		} else {
			found, err := c.checkQueuedOnDisk(o, pc, cutoff)
			if err != nil {
				o.res = EZWriteResult{Err: err}
				return
			}
			if found {
				return
			}
		}
	}

	pc.last++
	seq := pc.last
	index := true // a tick memory key is needed (gentick.go)
	if w.NewTick {
		index = !putGenTick(w.Tick, pc.qname, seq, now)
		if index && len(w.Tick) == genTickLen {
			putRandomTick(w.Tick)
		}
	}
	c.key = queueKey(c.key[:0], pc.qname, seq)
	c.val = encodeMessage(c.val[:0], now, w.Tick, w.Body)
	_ = b.Set(c.key, c.val, nil)
	if index {
		c.key = tickKey(c.key[:0], pc.qname, w.Tick)
		c.val = encodeTick(c.val[:0], seq, now)
		_ = b.Set(c.key, c.val, nil)
	}
	pc.add(pendingMsg{seq: seq, time: now, tick: w.Tick, body: w.Body})
	c.appended++

	// EZ-W-09 by count, in the same batch: at once for readers (first),
	// on disk a chunk at a time (dropTo).
	if keep := uint64(c.s.opts.EZMaxQueue); pc.last-pc.first+1 > keep {
		newFirst := pc.last - keep + 1
		c.dropped += newFirst - pc.first
		pc.first = newFirst
		c.dropTo(b, pc, min(retentionChunk, max(keep/16, 1)))
	}
	o.res = EZWriteResult{Msg: Message{Seq: seq, Tick: w.Tick, Body: w.Body, Time: now}}
}

// checkQueuedOnDisk answers o if its tick is queued in the committed
// state (and not dropped by this batch): a generated tick names its
// message's seq, any tick may have a tick memory key.
func (c *committer) checkQueuedOnDisk(o *ezOp, pc *pendingChan, cutoff int64) (bool, error) {
	if pc.first > pc.last {
		return false, nil
	}
	if seq, _, gen := parseGenTick(pc.qname, o.w.Tick); gen {
		if found, err := c.answerIfQueued(o, pc, seq, cutoff); found || err != nil {
			return found, err
		}
	}
	c.key = tickKey(c.key[:0], pc.qname, o.w.Tick)
	seq, _, found, err := c.s.getTick(c.key)
	if err != nil || !found {
		return false, err
	}
	return c.answerIfQueued(o, pc, seq, cutoff)
}

// answerIfQueued answers o if message seq is queued and holds o's tick.
func (c *committer) answerIfQueued(o *ezOp, pc *pendingChan, seq uint64, cutoff int64) (bool, error) {
	if seq < pc.first || seq > pc.last {
		return false, nil
	}
	c.key = queueKey(c.key[:0], pc.qname, seq)
	v, closer, err := c.s.db.Get(c.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: read %s seq %d: %w", ErrStorage, pc.qname, seq, err)
	}
	defer closer.Close()
	mt, tick, body, ok := decodeMessage(v)
	if !ok || mt < cutoff || !bytes.Equal(tick, o.w.Tick) {
		return false, nil
	}
	c.answerQueued(o, seq, mt, tick, body)
	return true, nil
}

// answerQueued answers a write whose tick is queued as (seq, tick, body).
func (c *committer) answerQueued(o *ezOp, seq uint64, t int64, tick, body []byte) {
	if !bytes.Equal(body, o.w.Body) {
		c.conflicts++
		o.res = EZWriteResult{Err: ErrTickConflict}
		return
	}
	c.dups++
	buf := make([]byte, len(tick)+len(body))
	n := copy(buf, tick)
	copy(buf[n:], body)
	o.res = EZWriteResult{
		Msg:       Message{Seq: seq, Tick: buf[:n:n], Body: buf[n:], Time: t},
		Duplicate: true,
	}
}

// retentionChunk is how many messages count retention lets pile up below
// a channel's first seq before it deletes them from disk, as point
// deletes, all in one group: the channel's metadata key is written once
// per chunk instead of with every write at a full queue. Nothing reads
// below first, so the messages are gone for readers at once.
//
// Point deletes, not a range tombstone: while a range tombstone is in
// the memtable, every Get and iterator over it builds its fragments
// (an allocation per lookup of a client tick, and CPU on every read),
// which cost more than the memtable inserts a range would save.
//
// Single deletes where the committer knows what lies below first: a
// message's key is written once (a channel's seqs only grow, and a
// channel is forgotten only with its account, after a range deletion of
// its keys) and deleted once (dropTo moves floor past what it deleted).
// A single delete and the write it meets vanish together as soon as a
// flush or compaction sees both, where a delete's tombstone is carried
// down to the last level: a queue at its retention bound writes as many
// deletes as messages, most of them into the memtable that still holds
// the message, so its flushes and compactions shrink to the messages
// still queued. floor 0 (a channel loaded at Open, where an earlier run
// may have deleted part of what lies below first) takes plain deletes.
// Pebble reports a single delete that met no single write
// (Store.misuse).
const retentionChunk = 64

// dropTo deletes from disk the messages of pc below pc.first once at
// least chunk of them are there (see channel.floor): point deletes for a
// chunk of count retention, one range for more (a flush).
func (c *committer) dropTo(b *pebble.Batch, pc *pendingChan, chunk uint64) {
	if pc.first < pc.floor+chunk {
		return
	}
	if n := pc.first - pc.floor; n <= retentionChunk {
		for seq := pc.floor; seq < pc.first; seq++ {
			c.key = queueKey(c.key[:0], pc.qname, seq)
			if pc.floor > 0 {
				_ = b.SingleDelete(c.key, nil)
			} else {
				_ = b.Delete(c.key, nil)
			}
		}
	} else {
		c.deleteRange(b, pc.qname, pc.floor, pc.first)
	}
	pc.floor = pc.first
	pc.meta = true
}

// setMeta writes pc's metadata key as the group leaves it.
func (c *committer) setMeta(b *pebble.Batch, pc *pendingChan) {
	c.key = metaKey(c.key[:0], pc.qname)
	c.val = encodeMeta(c.val[:0], pc.first, pc.last)
	_ = b.Set(c.key, c.val, nil)
}

// deleteRange deletes the messages from..to-1 of qname.
func (c *committer) deleteRange(b *pebble.Batch, qname string, from, to uint64) {
	c.key = queueKey(c.key[:0], qname, from)
	if to == from+1 {
		_ = b.Delete(c.key, nil)
		return
	}
	c.val = queueKey(c.val[:0], qname, to)
	_ = b.DeleteRange(c.key, c.val, nil)
}

// releaseChan forgets pc's pending state: the published state of its
// channel is the applied one again.
func (c *committer) releaseChan(pc *pendingChan) {
	delete(c.pend, pc.qname)
	clear(pc.msgs)
	pc.msgs = pc.msgs[:0]
	clear(pc.tickIdx)
	pc.ch = nil
	c.free = append(c.free, pc)
}

// reset forgets the state of a group that is abandoned before it was
// sealed (a sweep that failed), keeping the buffers.
func (c *committer) reset() {
	c.ops = c.ops[:0]
	for _, pc := range c.touched {
		c.releaseChan(pc)
	}
	c.touched = c.touched[:0]
	c.appended, c.dups, c.conflicts, c.flushes, c.dropped, c.flushed, c.revocations = 0, 0, 0, 0, 0, 0, 0
	c.cf.reset(c)
}
