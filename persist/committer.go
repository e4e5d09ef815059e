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

// writeReq carries one EZWrite, one CFPush or one account change through
// the committer.
// Pooled, so that carrying either kind costs no allocation.
type writeReq struct {
	w    EZWrite
	done WriteCompletion // nil for a CF push
	res  EZWriteResult

	cf     CFPush
	cfDone CFCompletion // nil for an EZ write
	cfRes  CFPushResult

	acct *accountChange // set for an account change, which carries nothing else
}

// WriteCompletion receives an EZWrite's outcome (see EZWrite for when and
// on which goroutine). A caller that keeps one object per write passes it
// with EZWriteTo and allocates no closure.
type WriteCompletion interface {
	WriteDone(EZWriteResult)
}

// completionFunc adapts a function to WriteCompletion; a func value is one
// pointer, so the conversion does not allocate.
type completionFunc func(EZWriteResult)

func (f completionFunc) WriteDone(r EZWriteResult) { f(r) }

var writeReqPool = sync.Pool{New: func() any { return new(writeReq) }}

// EZWrite queues w for the committer and returns without waiting for I/O;
// done is called exactly once with the outcome.
//
// Ownership: the Store reads w.Tick and w.Body until done is called, so the
// caller must not modify them before then. For an appended message,
// EZWriteResult.Msg.Tick and .Body are w's own slices; for a duplicate they
// are fresh copies.
//
// done runs on the committer goroutine, in acceptance order, after the
// batch holding w is committed (synced under SyncAlways) and published:
// EZRead and EZLastSeq already see the message. It must not block, must
// not panic, and must not call EZWrite itself (hand the result to an
// event loop instead): every other write waits for it.
//
// EZWrite never blocks: a write it cannot queue calls done on the
// caller's goroutine before EZWrite returns, with ErrClosed after Close,
// an error wrapping ErrStorage when the Store is failed or stalled
// (Healthy) or Options.WriteQueue writes are already waiting, or an error
// naming an invalid qname or tick.
func (s *Store) EZWrite(w EZWrite, done func(EZWriteResult)) {
	s.EZWriteTo(w, completionFunc(done))
}

// EZWriteTo is EZWrite with its completion as an interface.
func (s *Store) EZWriteTo(w EZWrite, done WriteCompletion) {
	if err := checkWrite(&w); err != nil {
		done.WriteDone(EZWriteResult{Err: err})
		return
	}
	r := writeReqPool.Get().(*writeReq)
	r.w, r.done = w, done
	if err := s.enqueue(r); err != nil {
		done.WriteDone(EZWriteResult{Err: err})
	}
}

// enqueue hands r to the committer without blocking. When it cannot (see
// EZWrite) it releases r and returns why.
func (s *Store) enqueue(r *writeReq) error {
	// closeMu, held for reading, keeps Close from closing the channel
	// between the check and the send.
	s.closeMu.RLock()
	err := s.Healthy()
	if err == nil {
		select {
		case s.writes <- r:
		default:
			err = errQueueFull
		}
	}
	s.closeMu.RUnlock()
	if err != nil {
		*r = writeReq{}
		writeReqPool.Put(r)
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
	msgs        []pendingMsg
	tickIdx     map[string]int // tick → index in msgs of its newest append; built past linearTicks
	// group is the last group that touched the channel: its state stays
	// here, as applied, until that group is published (pipeline.go).
	group uint64
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
	reqs    []*writeReq
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
		case r, ok := <-s.writes:
			if !ok {
				c.shutdown()
				return
			}
			for r != nil {
				if r.acct != nil {
					c.quiesce()
					c.changeAccount(r)
					break
				}
				c.reqs = append(c.reqs[:0], r)
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
				r = next // an account change that ended the batch
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
func (c *committer) drain() (next *writeReq, open bool) {
	for len(c.reqs) < c.s.opts.MaxBatch {
		select {
		case r, ok := <-c.s.writes:
			if !ok {
				return nil, false
			}
			if r.acct != nil {
				return r, true
			}
			c.reqs = append(c.reqs, r)
		default:
			return nil, true
		}
	}
	return nil, true
}

// commit builds one Pebble batch from c.reqs, applies it and hands it to
// the syncer, which completes every request once it is synced.
func (c *committer) commit() {
	s := c.s
	g := c.newGroup()
	g.reqs, c.reqs = c.reqs, g.reqs[:0]
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
	cutoff := now - int64(s.opts.EZMaxAge)
	b := s.db.NewBatch()
	cfCutoff := now - int64(s.opts.CFRetain)
	for _, r := range g.reqs {
		if r.cfDone != nil {
			c.buildCF(b, r, now, cfCutoff)
		} else {
			c.build(b, r, now, cutoff)
		}
	}
	for _, pc := range c.touched {
		c.key = metaKey(c.key[:0], pc.qname)
		c.val = encodeMeta(c.val[:0], pc.first, pc.last)
		_ = b.Set(c.key, c.val, nil)
	}
	c.setTopicMeta(b)
	c.seal(g)
	if h := s.testHold.Load(); h != nil {
		for _, r := range g.reqs {
			if r.done != nil && r.w.QName == h.qname && s.testHold.CompareAndSwap(h, nil) {
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
		err = s.guard(func() error { return s.db.Apply(b, s.wopt) })
		_ = b.Close()
	}
	if err != nil {
		// Pebble may still hold b: it is never closed or reused.
		s.fail(err)
		g.err = fmt.Errorf("persist: commit %d writes: %w", len(g.reqs), err)
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
		pc.ch, pc.qname, pc.first, pc.last = ch, ch.qname, ch.first, ch.last
	} else {
		pc.ch, pc.qname, pc.first, pc.last = nil, qname, 1, 0
	}
	pc.group = c.seq
	c.pend[pc.qname] = pc
	c.touched = append(c.touched, pc)
	return pc
}

// build adds r's mutations to b and sets r.res as if b commits.
func (c *committer) build(b *pebble.Batch, r *writeReq, now, cutoff int64) {
	w := &r.w
	if c.revoked(w.QName, '-', w.AccountID) {
		c.revocations++
		r.res = EZWriteResult{Err: ErrRevoked}
		return
	}
	pc := c.pending(w.QName)
	if w.Flush {
		if pc.first <= pc.last {
			c.deleteRange(b, pc.qname, pc.first, pc.last+1)
			c.flushed += pc.last - pc.first + 1
		}
		pc.first = pc.last + 1
		c.flushes++
		r.res = EZWriteResult{}
		return
	}

	// EZ-W-07: is the tick still queued? This batch's own appends first,
	// they supersede whatever the disk says about the tick.
	if m, ok := pc.findTick(w.Tick); ok {
		if m.seq >= pc.first && m.time >= cutoff {
			c.answerQueued(r, m.seq, m.time, m.tick, m.body)
			return
		}
	} else if !w.NewTick {
		found, err := c.checkQueuedOnDisk(r, pc, cutoff)
		if err != nil {
			r.res = EZWriteResult{Err: err}
			return
		}
		if found {
			return
		}
	}

	pc.last++
	seq := pc.last
	c.key = queueKey(c.key[:0], pc.qname, seq)
	c.val = encodeMessage(c.val[:0], now, w.Tick, w.Body)
	_ = b.Set(c.key, c.val, nil)
	c.key = tickKey(c.key[:0], pc.qname, w.Tick)
	c.val = encodeTick(c.val[:0], seq, now)
	_ = b.Set(c.key, c.val, nil)
	pc.add(pendingMsg{seq: seq, time: now, tick: w.Tick, body: w.Body})
	c.appended++

	// EZ-W-09 by count, in the same batch.
	if keep := uint64(c.s.opts.EZMaxQueue); pc.last-pc.first+1 > keep {
		newFirst := pc.last - keep + 1
		c.deleteRange(b, pc.qname, pc.first, newFirst)
		c.dropped += newFirst - pc.first
		pc.first = newFirst
	}
	r.res = EZWriteResult{Msg: Message{Seq: seq, Tick: w.Tick, Body: w.Body, Time: now}}
}

// checkQueuedOnDisk answers r if its tick is queued in the committed
// state (and not dropped by this batch).
func (c *committer) checkQueuedOnDisk(r *writeReq, pc *pendingChan, cutoff int64) (bool, error) {
	if pc.first > pc.last {
		return false, nil
	}
	c.key = tickKey(c.key[:0], pc.qname, r.w.Tick)
	seq, t, found, err := c.s.getTick(c.key)
	if err != nil || !found || seq < pc.first || seq > pc.last || t < cutoff {
		return false, err
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
	if !ok || !bytes.Equal(tick, r.w.Tick) {
		return false, nil
	}
	c.answerQueued(r, seq, mt, tick, body)
	return true, nil
}

// answerQueued answers a write whose tick is queued as (seq, tick, body).
func (c *committer) answerQueued(r *writeReq, seq uint64, t int64, tick, body []byte) {
	if !bytes.Equal(body, r.w.Body) {
		c.conflicts++
		r.res = EZWriteResult{Err: ErrTickConflict}
		return
	}
	c.dups++
	buf := make([]byte, len(tick)+len(body))
	n := copy(buf, tick)
	copy(buf[n:], body)
	r.res = EZWriteResult{
		Msg:       Message{Seq: seq, Tick: buf[:n:n], Body: buf[n:], Time: t},
		Duplicate: true,
	}
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
	c.reqs = c.reqs[:0]
	for _, pc := range c.touched {
		c.releaseChan(pc)
	}
	c.touched = c.touched[:0]
	c.appended, c.dups, c.conflicts, c.flushes, c.dropped, c.flushed, c.revocations = 0, 0, 0, 0, 0, 0, 0
	c.cf.reset(c)
}
