package persist

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// readChunkMax caps one allocation holding the bytes of read messages.
const readChunkMax = 64 << 10

// guess is the capacity to reserve for a result of at most want messages
// whose first holds size bytes: want, or fewer when the byte limit lets
// fewer of that size in.
func (l ReadLimit) guess(want, size int) int {
	if l.Bytes > 0 {
		want = min(want, l.Bytes/max(size, 1)+1)
	}
	return max(want, 1)
}

// chunk is the capacity of a new buffer for read bytes, starting with a
// message of size bytes that up to left messages (itself included) of
// about its size may follow, got bytes being read already: room for them
// up to readChunkMax, no more than the byte limit leaves, and always room
// for the message.
func (l ReadLimit) chunk(size, left, got int) int {
	c := min(size*max(left, 1), readChunkMax)
	if l.Bytes > 0 {
		c = min(c, l.Bytes-got)
	}
	return max(size, c)
}

// keyBufPool holds key buffers for reads, which run on many goroutines.
var keyBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*maxKeyLen); return &b }}

// getTick reads the tick memory under key.
func (s *Store) getTick(key []byte) (seq uint64, unixNano int64, found bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("%w: read tick: %w", ErrStorage, err)
	}
	seq, unixNano, ok := decodeTick(v)
	_ = closer.Close()
	return seq, unixNano, ok, nil
}

// findTick returns what EZRead needs to know of tick in qname, whose
// committed messages are first..last: the seq of its newest message and
// when that was written, as the tick memory key says or, for a
// generated tick (gentick.go), as the tick and its message say. kb is a
// key buffer.
func (s *Store) findTick(kb *[]byte, qname string, tick []byte, first, last uint64, cutoff int64) (seq uint64, unixNano int64, found bool, err error) {
	gseq, gtime, gen := parseGenTick(qname, tick)
	if gen && first <= gseq && gseq <= last {
		// Message gseq says whether it is this tick's and when it was
		// written. Queued, it is the tick's newest message: a re-sent
		// tick that is queued appends nothing (EZ-W-07).
		*kb = queueKey((*kb)[:0], qname, gseq)
		mt, same, err := s.messageTick(*kb, tick)
		switch {
		case err != nil:
			return 0, 0, false, err
		case same && mt >= cutoff:
			return gseq, mt, true, nil
		case same:
			gtime = mt
		default:
			gen = false // another message's seq: not a tick of this channel
		}
	}
	*kb = tickKey((*kb)[:0], qname, tick)
	seq, unixNano, found, err = s.getTick(*kb)
	if err != nil || found || !gen {
		return seq, unixNano, found, err
	}
	// A generated tick that no client wrote again: remembered as long as
	// a tick memory key would be (dropped or not).
	return gseq, gtime, true, nil
}

// messageTick reads the message under key and reports when it was
// written and whether it holds tick (false when there is none).
func (s *Store) messageTick(key, tick []byte) (unixNano int64, same bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: read message: %w", ErrStorage, err)
	}
	t, mtick, _, ok := decodeMessage(v)
	same = ok && bytes.Equal(mtick, tick)
	_ = closer.Close()
	return t, same, nil
}

// channelRange returns the committed range of qname's messages.
func (s *Store) channelRange(qname string) (first, last uint64, ok bool) {
	s.chanMu.RLock()
	ch := s.channels[qname]
	if ch != nil {
		first, last = ch.first, ch.last
	}
	s.chanMu.RUnlock()
	return first, last, ch != nil
}

// EZRead answers an EZComet read resuming from tick (EZ-R-02/03/04, X-01).
// tick nil, empty, "null", unknown or no longer queued: every queued
// message; tick queued: the messages after it. Messages older than
// EZMaxAge are never returned. Gap is set only for a tick the channel
// knows (queued, or dropped and remembered for TickMemory after it was
// written) when a message after it was dropped. lim bounds the result
// (see ReadLimit).
//
// Synchronous and safe from any goroutine, event loops included: it reads
// Pebble's memtable and block cache (one Get for the tick, one iterator);
// it allocates the result: the Messages slice and one buffer for their
// bytes (more only past 64 KiB), never more than lim allows. The caller
// owns the result, or, with lim.Buf, the result lives in that buffer. A channel never written answers an empty result with
// Cursor 0. After a failed commit every read answers the ErrStorage error.
func (s *Store) EZRead(qname string, tick []byte, lim ReadLimit) (ReadResult, error) {
	first, last, ok := s.channelRange(qname)
	if !ok {
		return ReadResult{}, nil
	}
	now := s.opts.Now().UnixNano()
	cutoff := now - int64(s.opts.EZMaxAge)
	if len(tick) == 0 || string(tick) == "null" || len(tick) > maxTickLen {
		return s.read(qname, first, last, 0, false, lim, cutoff)
	}
	kb := keyBufPool.Get().(*[]byte)
	seq, t, found, err := s.findTick(kb, qname, tick, first, last, cutoff)
	keyBufPool.Put(kb)
	if err != nil {
		return ReadResult{}, err
	}
	switch {
	case !found || seq > last:
		// Unknown (or the remains of a failed commit): the seed's "all
		// messages" answer, never a gap.
		return s.read(qname, first, last, 0, false, lim, cutoff)
	case seq >= first && t >= cutoff:
		return s.read(qname, first, last, seq, true, lim, cutoff)
	case t+int64(s.opts.TickMemory) > now:
		// Dropped but remembered: every queued message is after it.
		return s.read(qname, first, last, seq, true, lim, cutoff)
	default:
		return s.read(qname, first, last, 0, false, lim, cutoff)
	}
}

// EZReadAfter is EZRead from a sequence cursor instead of a tick, for
// subscribers that keep their cursor. Gap is set when message after+1
// was dropped. A cursor beyond the channel's last seq reads nothing and
// answers Cursor = last seq.
func (s *Store) EZReadAfter(qname string, after uint64, lim ReadLimit) (ReadResult, error) {
	first, last, ok := s.channelRange(qname)
	if !ok {
		return ReadResult{}, nil
	}
	cutoff := s.opts.Now().UnixNano() - int64(s.opts.EZMaxAge)
	return s.read(qname, first, last, after, after > 0, lim, cutoff)
}

// read returns the retained messages of first..last after seq after.
// known says after is a resume point of this channel, so a gap can be
// reported.
func (s *Store) read(qname string, first, last, after uint64, known bool, lim ReadLimit, cutoff int64) (ReadResult, error) {
	if err := s.errFailed(); err != nil {
		// Pebble applies a batch to its memtable before the WAL write
		// fails, so after a failed commit it may show deletions that were
		// never acknowledged. Fail closed until the Store is reopened.
		return ReadResult{}, err
	}
	limit := lim.Messages
	if limit <= 0 {
		limit = s.opts.EZMaxQueue
	}
	res := ReadResult{Cursor: last}
	cut := false // the byte limit stopped the read before a message
	lo := max(first, after+1)
	if lo <= last {
		kb := keyBufPool.Get().(*[]byte)
		defer keyBufPool.Put(kb)
		*kb = queueKey((*kb)[:0], qname, lo)
		mid := len(*kb)
		*kb = queueKey(*kb, qname, last+1)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: (*kb)[:mid], UpperBound: (*kb)[mid:]})
		if err != nil {
			return ReadResult{}, fmt.Errorf("%w: read %s: %w", ErrStorage, qname, err)
		}
		want := int(min(uint64(limit), last-lo+1))
		// The messages' bytes share a few chunks: a chunk is never
		// reallocated, so earlier slices stay valid when a new one starts.
		var chunk []byte
		got := 0 // bytes read
		buf := lim.Buf
		if buf != nil {
			buf.msgs, buf.data = buf.msgs[:0], buf.data[:0]
		}
		n := 0 // messages read
		for it.First(); it.Valid() && n < limit; it.Next() {
			t, tick, body, ok := decodeMessage(it.Value())
			if !ok || t < cutoff {
				continue
			}
			size := len(tick) + len(body)
			if !lim.allows(n, got, size) {
				cut = true
				break
			}
			n++
			if buf != nil {
				got += size
				buf.add(idFromKey(it.Key()), t, tick, body)
				continue
			}
			if res.Messages == nil {
				res.Messages = make([]Message, 0, lim.guess(want, size))
			}
			if cap(chunk)-len(chunk) < size {
				left := want - len(res.Messages)
				chunk = make([]byte, 0, lim.chunk(size, left, got))
			}
			got += size
			start := len(chunk)
			chunk = append(append(chunk, tick...), body...)
			mid, end := start+len(tick), len(chunk)
			res.Messages = append(res.Messages, Message{
				Seq:  idFromKey(it.Key()),
				Tick: chunk[start:mid:mid],
				Body: chunk[mid:end:end],
				Time: t,
			})
		}
		if err := it.Close(); err != nil {
			return ReadResult{}, fmt.Errorf("%w: read %s: %w", ErrStorage, qname, err)
		}
		if buf != nil {
			res.Messages = buf.done()
		}
	}
	if n := len(res.Messages); n > 0 {
		res.Cursor = res.Messages[n-1].Seq
		res.More = (n == limit || cut) && res.Cursor < last
		res.Gap = known && res.Messages[0].Seq > after+1
	} else {
		res.Gap = known && after < last
	}
	return res, nil
}

// EZLastSeq returns the seq of qname's newest message ever accepted, 0 if
// none. In memory; any goroutine.
func (s *Store) EZLastSeq(qname string) uint64 {
	_, last, _ := s.channelRange(qname)
	return last
}

// EZQueued returns how many messages qname retains (age-expired ones count
// until the sweeper deletes them). In memory; any goroutine.
func (s *Store) EZQueued(qname string) int {
	first, last, ok := s.channelRange(qname)
	if !ok || first > last {
		return 0
	}
	return int(last - first + 1)
}

// EZChannels lists username's channels sorted by qname. It walks
// every channel in memory: for the stats endpoint, not per message.
func (s *Store) EZChannels(username string) []ChannelStat {
	prefix := username + "-"
	var out []ChannelStat
	s.chanMu.RLock()
	for qname, ch := range s.channels {
		if !strings.HasPrefix(qname, prefix) {
			continue
		}
		st := ChannelStat{QName: qname, LastSeq: ch.last}
		if ch.first <= ch.last {
			st.Queued = int(ch.last - ch.first + 1)
		}
		out = append(out, st)
	}
	s.chanMu.RUnlock()
	slices.SortFunc(out, func(a, b ChannelStat) int { return strings.Compare(a.QName, b.QName) })
	return out
}
