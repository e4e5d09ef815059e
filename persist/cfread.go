package persist

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// CFReadResult is the answer of CFRead.
type CFReadResult struct {
	Pushes []CFMessage // ascending ID, within the ReadLimit; slices owned by the caller
	Cursor uint64      // ID of the last push returned, else `after`
	Last   uint64      // highest ID ever accepted on the topic when read (0 if none)
	// Gap: some push with ID > after will never be returned to this
	// reader: dropped by retention, or retained but older than notBefore.
	Gap  bool
	More bool // the ReadLimit, in pushes or in bytes, cut the answer
}

// cfReadPrealloc caps the Pushes capacity a read reserves up front: ids
// may be sparse, so last-after says little about how many pushes exist.
const cfReadPrealloc = 64

// topic returns the metadata of a topic, nil if it never had a push.
func (s *Store) topic(name []byte) *cfTopic {
	s.topicMu.RLock()
	t := s.topics[string(name)]
	s.topicMu.RUnlock()
	return t
}

// CFLast is the highest ID ever accepted on topic (0 if none). In memory,
// no allocation; safe from any goroutine.
func (s *Store) CFLast(topic []byte) uint64 {
	if t := s.topic(topic); t != nil {
		return t.last.Load()
	}
	return 0
}

// CFRead returns the retained pushes of topic with ID > after and Time >=
// notBefore (Unix ns), oldest first, within lim (see ReadLimit; Messages
// <= 0: no cap on pushes). Pushes older than Options.CFRetain count as
// dropped even before the sweeper deletes them.
//
// Gap follows the definition on CFReadResult; it is true for after = 0
// too whenever a push was dropped, so a caller that asks for a window
// rather than a resume point (CF-L-05 id 0, X-01) ignores it.
//
// Safe from any goroutine, event loops included: a topic lookup in
// memory; when a push after `after` exists, one bounded Pebble iterator
// over the memtable and block cache, which walks the pushes it returns
// plus those it skips as older than notBefore, and looks at one push
// past a cut answer. It allocates only the result: the Pushes slice and
// one buffer for their texts (more past 64 KiB or 64 pushes), never more
// than lim allows; nothing when there is nothing to return. After a
// failed commit it answers the ErrStorage error.
func (s *Store) CFRead(topic []byte, after uint64, notBefore int64, lim ReadLimit) (CFReadResult, error) {
	if err := s.errFailed(); err != nil {
		return CFReadResult{}, err
	}
	res := CFReadResult{Cursor: after}
	t := s.topic(topic)
	if t == nil {
		return res, nil
	}
	// last first: every push up to it is committed, so the iterator below
	// sees it.
	last := t.last.Load()
	res.Last = last
	if after >= last {
		return res, nil // droppedMax <= last: nothing was missed either
	}
	cutoff := max(notBefore, s.opts.Now().UnixNano()-int64(s.opts.CFRetain))

	kb := keyBufPool.Get().(*[]byte)
	defer keyBufPool.Put(kb)
	*kb = cfPushKey((*kb)[:0], t.name, after+1)
	n := len(*kb)
	*kb = cfPushKey(*kb, t.name, last+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: (*kb)[:n], UpperBound: (*kb)[n:]})
	if err != nil {
		return CFReadResult{}, fmt.Errorf("%w: read %s: %w", ErrStorage, t.name, err)
	}
	// droppedMax after the iterator exists: the sweeper publishes it
	// before deleting, so a push this iterator misses is covered by it.
	dropped := t.droppedMax.Load()
	res.Gap = dropped > after
	ok := it.First()
	if dropped > after {
		ok = it.SeekGE(cfPushKey((*kb)[len(*kb):], t.name, dropped+1))
	}
	limit := lim.Messages
	var chunk []byte
	got := 0 // bytes read
	for ; ok; ok = it.Next() {
		tm, secret, text, valid := decodeCFPush(it.Value())
		if !valid {
			continue
		}
		if tm < cutoff {
			res.Gap = true
			continue
		}
		if limit > 0 && len(res.Pushes) == limit || !lim.allows(len(res.Pushes), got, len(text)) {
			res.More = true
			break
		}
		if res.Pushes == nil {
			want := int(min(last-after, cfReadPrealloc))
			if limit > 0 {
				want = min(want, limit)
			}
			res.Pushes = make([]CFMessage, 0, lim.guess(want, len(text)))
		}
		if cap(chunk)-len(chunk) < len(text) {
			left := cap(res.Pushes) - len(res.Pushes)
			chunk = make([]byte, 0, lim.chunk(len(text), left, got))
		}
		got += len(text)
		start := len(chunk)
		chunk = append(chunk, text...)
		res.Pushes = append(res.Pushes, CFMessage{
			ID:     idFromKey(it.Key()),
			Time:   tm,
			Secret: secret,
			Text:   chunk[start:len(chunk):len(chunk)],
		})
	}
	if err := it.Close(); err != nil {
		return CFReadResult{}, fmt.Errorf("%w: read %s: %w", ErrStorage, t.name, err)
	}
	if n := len(res.Pushes); n > 0 {
		res.Cursor = res.Pushes[n-1].ID
	}
	return res, nil
}
