package persist

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CFPush is one Cometify push after the protocol validated it. As an
// EZWrite's, its bytes are the caller's again once its completion ran.
type CFPush struct {
	Topic  string // "<username>/<identifier lowercased>"; the protocol validated both parts
	ID     uint64 // the push_id given (when HasID)
	HasID  bool   // false: the store assigns 1 + the highest id ever accepted on Topic
	Secret bool
	Text   []byte // the store reads it until done is called
	// AccountID: as EZWrite.AccountID.
	AccountID uint64
	// Secure is the md5 digest the push's `secure` field carried, when
	// HasSecure (CF-P-09): a secret push records it for as long as the
	// push is retained, and a secret=0 push carrying a recorded digest is
	// refused with ErrSecretReplay.
	Secure    [16]byte
	HasSecure bool
	// Nonce is the CF-P-10 nonce ("" when the push has no signature): a
	// nonce an accepted push of the same account used less than
	// NonceMemory ago is refused with ErrNonceReused; an accepted push
	// records it.
	Nonce string
}

// MaxPushID is the highest push id (CF-P-04: ids are 1..2^63-1).
const MaxPushID = 1<<63 - 1

// NonceMemory is how long a CF-P-10 nonce is remembered: a signature's
// ts may be 300 s off either way, so a captured push stays replayable for
// up to 600 s after it was accepted.
const NonceMemory = 600 * time.Second

// CFMessage is one retained push.
type CFMessage struct {
	ID     uint64
	Time   int64 // acceptance time, Unix ns
	Secret bool
	Text   []byte
}

// CFPushResult is the outcome of a CFPush, given to its completion.
type CFPushResult struct {
	Err       error     // nil, ErrPushConflict, ErrClosed, or wrapping ErrStorage
	Msg       CFMessage // the stored push; for a duplicate, the retained one (fresh copy)
	Duplicate bool      // same ID retained with the same Text: nothing appended, nothing to fan out
}

// CFCompletion receives a CFPush's outcome; see CFPushTo.
type CFCompletion interface{ CFPushDone(CFPushResult) }

// CFPushTo queues p for the committer and returns without waiting for
// I/O; done is called exactly once with the outcome. The contract is
// EZWriteTo's:
//
// done runs on the syncer goroutine, in acceptance order (EZ writes
// and CF pushes share one order and one Pebble batch, so one fsync serves
// both), after the group holding p is committed (synced under SyncAlways)
// and published: CFLast and CFRead already see the push. It must not
// block, must not panic and must not push or write itself. CFPushTo never
// blocks: a push refused before queueing (as EZWrite's, or a Topic that is
// empty, longer than 255 bytes or holds NUL, which the protocol never
// sends) completes on the caller's goroutine before CFPushTo returns.
//
// Ownership: the Store reads p.Text until done is called. For an accepted
// push, CFPushResult.Msg.Text is p.Text itself; for a duplicate it is a
// fresh copy of the retained text. p.Topic is kept (cloned) only when
// it names a new topic.
//
// Ids: without HasID the push gets 1 + the highest id ever accepted on
// the topic. A given id above it is accepted as is. A given id at or
// below it is a Duplicate when a push with that id and the same Text is
// still retained (younger than Options.CFRetain), else ErrPushConflict;
// so id 0 is always a conflict. The highest accepted id survives restarts
// and retention: ids are never reused. Ids are 1..MaxPushID (CF-P-04): a
// given id above it is a conflict, and once MaxPushID was accepted a push
// without an id is a conflict while the topic otherwise works as before.
//
// Inside persist an accepted push allocates nothing (except once per new
// topic).
func (s *Store) CFPushTo(p CFPush, done CFCompletion) {
	if len(p.Topic) == 0 || len(p.Topic) > maxTopicLen || strings.IndexByte(p.Topic, 0) >= 0 {
		done.CFPushDone(CFPushResult{Err: fmt.Errorf("persist: bad topic %q", p.Topic)})
		return
	}
	if len(p.Nonce) > maxNonceLen {
		done.CFPushDone(CFPushResult{Err: fmt.Errorf("persist: nonce of %d bytes", len(p.Nonce))})
		return
	}
	o := cfOpPool.Get().(*cfOp)
	o.p, o.done = p, done
	if err := s.enqueue(o); err != nil {
		*o = cfOp{}
		cfOpPool.Put(o)
		done.CFPushDone(CFPushResult{Err: err})
	}
}

// cfOp is one CFPush in the queue; pooled, as ezOp.
type cfOp struct {
	p    CFPush
	done CFCompletion
	res  CFPushResult
}

var cfOpPool = sync.Pool{New: func() any { return new(cfOp) }}

func (o *cfOp) build(c *committer, b *pebble.Batch, now int64) {
	c.buildCF(b, o, now, now-int64(c.s.opts.CFRetain))
}

func (o *cfOp) complete(st *storeCounters, err error) {
	res := o.res
	if err != nil {
		res = CFPushResult{Err: err}
		st.errors.Add(1)
	}
	done := o.done
	*o = cfOp{}
	cfOpPool.Put(o)
	done.CFPushDone(res)
}

// pendingPush is a push accepted by the batch being built.
type pendingPush struct {
	id     uint64
	time   int64
	secret bool
	text   []byte
}

// pendingTopic is a topic's state as the batch being built leaves it; it
// is published only if the batch commits.
type pendingTopic struct {
	t          *cfTopic // nil for a topic this batch creates
	name       string
	committed  uint64 // last as committed before this batch
	last       uint64
	droppedMax uint64
	lastSecret int64         // newest CF-P-09 record's time (Unix ns), 0 if none
	pushes     []pendingPush // ascending id
	// group is the last group that touched the topic (as pendingChan's).
	group uint64
}

// cfBatch is the committer's Cometify state for the batch being built.
type cfBatch struct {
	pend    map[string]*pendingTopic
	touched []*pendingTopic // in first-touch order; reused across batches
	free    []*pendingTopic
	drops   []cfDrop // the sweep's, reused

	// secrets and nonces are the replay records this batch made (replay.go).
	secrets map[secretRef]struct{}
	nonces  map[nonceRef]struct{}

	pushes, dups, conflicts, secretReplays, noncesReused uint64
}

// reset forgets a group abandoned before it was sealed (see
// committer.reset).
func (cb *cfBatch) reset(c *committer) {
	for _, pt := range cb.touched {
		c.releaseTopic(pt)
	}
	cb.touched = cb.touched[:0]
	clear(cb.secrets)
	clear(cb.nonces)
	cb.pushes, cb.dups, cb.conflicts, cb.secretReplays, cb.noncesReused = 0, 0, 0, 0, 0
}

// pendingTopic returns the batch's view of topic name.
func (c *committer) pendingTopic(name string) *pendingTopic {
	cb := &c.cf
	if pt, ok := cb.pend[name]; ok {
		if pt.group != c.seq { // carried over from a group in flight
			pt.group = c.seq
			cb.touched = append(cb.touched, pt)
		}
		return pt
	}
	var pt *pendingTopic
	if n := len(cb.free); n > 0 {
		pt, cb.free = cb.free[n-1], cb.free[:n-1]
	} else {
		pt = new(pendingTopic)
	}
	// The syncer adds published topics to the map meanwhile.
	c.s.topicMu.RLock()
	t := c.s.topics[name]
	c.s.topicMu.RUnlock()
	if t != nil {
		pt.t, pt.name = t, t.name
		pt.committed, pt.last, pt.droppedMax = t.last.Load(), t.last.Load(), t.droppedMax.Load()
		pt.lastSecret = t.lastSecret.Load()
	} else {
		pt.t, pt.name = nil, strings.Clone(name) // as pending's qname
		pt.committed, pt.last, pt.droppedMax, pt.lastSecret = 0, 0, 0, 0
	}
	pt.group = c.seq
	cb.pend[pt.name] = pt
	cb.touched = append(cb.touched, pt)
	return pt
}

// releaseTopic forgets pt's pending state (as releaseChan).
func (c *committer) releaseTopic(pt *pendingTopic) {
	cb := &c.cf
	delete(cb.pend, pt.name)
	clear(pt.pushes)
	pt.pushes = pt.pushes[:0]
	pt.t = nil
	cb.free = append(cb.free, pt)
}

// buildCF adds r's push to b and sets o.res as if b commits. cutoff is
// the oldest acceptance time still retained. The outcomes rank as SPEC
// C-04 ranks their statuses: ErrRevoked (401), then ErrSecretReplay and
// ErrNonceReused (403), then the id rules (409 or ok); a refused push
// records nothing.
func (c *committer) buildCF(b *pebble.Batch, o *cfOp, now, cutoff int64) {
	p := &o.p
	if c.revoked(p.Topic, '/', p.AccountID) {
		c.revocations++
		o.res = CFPushResult{Err: ErrRevoked}
		return
	}
	pt := c.pendingTopic(p.Topic)
	if replay, err := c.secretReplayed(pt, p, cutoff); err != nil || replay {
		o.res = CFPushResult{Err: err}
		if replay {
			c.cf.secretReplays++
			o.res.Err = ErrSecretReplay
		}
		return
	}
	if reused, err := c.nonceReused(p, now); err != nil || reused {
		o.res = CFPushResult{Err: err}
		if reused {
			c.cf.noncesReused++
			o.res.Err = ErrNonceReused
		}
		return
	}
	c.applyIDRules(b, o, pt, now, cutoff)
	if o.res.Err == nil {
		c.recordGuards(b, pt, p, now)
	}
}

// applyIDRules appends r's push or answers it as a duplicate or a
// conflict (CF-P-04, CF-P-06).
func (c *committer) applyIDRules(b *pebble.Batch, o *cfOp, pt *pendingTopic, now, cutoff int64) {
	p := &o.p
	id := p.ID
	if !p.HasID {
		if pt.last >= MaxPushID {
			c.cf.conflicts++ // no id left to assign; the topic stays as it is
			o.res = CFPushResult{Err: ErrPushConflict}
			return
		}
		id = pt.last + 1
	}
	if id <= pt.last || id > MaxPushID {
		c.answerRetained(o, pt, id, cutoff)
		return
	}
	c.key = cfPushKey(c.key[:0], pt.name, id)
	c.val = encodeCFPush(c.val[:0], now, p.Secret, p.Text)
	_ = b.Set(c.key, c.val, nil)
	pt.last = id
	pt.pushes = append(pt.pushes, pendingPush{id: id, time: now, secret: p.Secret, text: p.Text})
	c.cf.pushes++
	o.res = CFPushResult{Msg: CFMessage{ID: id, Time: now, Secret: p.Secret, Text: p.Text}}
}

// answerRetained answers a push whose id is not above the topic's last:
// a duplicate if that id is retained with the same text, else a conflict.
func (c *committer) answerRetained(o *cfOp, pt *pendingTopic, id uint64, cutoff int64) {
	m, found, err := c.retainedPush(pt, id, cutoff)
	switch {
	case err != nil:
		o.res = CFPushResult{Err: err}
	case !found || !bytes.Equal(m.Text, o.p.Text):
		c.cf.conflicts++
		o.res = CFPushResult{Err: ErrPushConflict}
	default:
		c.cf.dups++
		o.res = CFPushResult{Msg: m, Duplicate: true}
	}
}

// retainedPush finds push id of pt as this batch leaves it, if it is
// retained. The returned Text is a fresh copy.
func (c *committer) retainedPush(pt *pendingTopic, id uint64, cutoff int64) (CFMessage, bool, error) {
	if id <= pt.droppedMax || id == 0 {
		return CFMessage{}, false, nil
	}
	if id > pt.committed {
		i, ok := slices.BinarySearchFunc(pt.pushes, id, func(p pendingPush, id uint64) int {
			return cmp.Compare(p.id, id)
		})
		if !ok {
			return CFMessage{}, false, nil
		}
		p := &pt.pushes[i]
		return CFMessage{ID: p.id, Time: p.time, Secret: p.secret, Text: bytes.Clone(p.text)}, true, nil
	}
	c.key = cfPushKey(c.key[:0], pt.name, id)
	v, closer, err := c.s.db.Get(c.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return CFMessage{}, false, nil
	}
	if err != nil {
		return CFMessage{}, false, fmt.Errorf("%w: read %s push %d: %w", ErrStorage, pt.name, id, err)
	}
	defer closer.Close()
	t, secret, text, ok := decodeCFPush(v)
	if !ok || t < cutoff {
		return CFMessage{}, false, nil
	}
	return CFMessage{ID: id, Time: t, Secret: secret, Text: bytes.Clone(text)}, true, nil
}

// setTopicMeta adds the metadata of every topic whose last moved to b.
func (c *committer) setTopicMeta(b *pebble.Batch) {
	for _, pt := range c.cf.touched {
		// Only a topic's first push writes its key: Open takes last from
		// the newest push on disk (Store.loadTopics), and the sweeper
		// writes the key when it deletes pushes.
		if pt.last == pt.committed || pt.t != nil {
			continue
		}
		c.key = cfMetaKey(c.key[:0], pt.name)
		c.val = encodeMeta(c.val[:0], pt.last, pt.droppedMax)
		_ = b.Set(c.key, c.val, nil)
	}
}
