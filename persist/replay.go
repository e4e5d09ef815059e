package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Replay guards of Cometify pushes, checked and recorded by the committer
// (the single writer, so pushes of one batch see each other):
//
//   - CF-P-09: a secret=1 push accepted with an md5 secure records (topic,
//     digest) for as long as the push is retained (Options.CFRetain); a
//     secret=0 push carrying a recorded digest gets ErrSecretReplay, so a
//     captured secret push cannot be republished in the clear.
//   - CF-P-10: an accepted push with a nonce records (username, nonce) for
//     NonceMemory; a push of the same account with that nonce meanwhile
//     gets ErrNonceReused.
//
// A record is a point key (one Get to check it) plus an entry in a
// time-ordered expiry index, so that the sweeper deletes the expired
// records in order without scanning the live ones.

// secretRef and nonceRef name a record made by the batch being built;
// their strings alias the pushes' own.
type (
	secretRef struct {
		topic  string
		digest [16]byte
	}
	nonceRef struct{ user, nonce string }
)

// maxNonceLen bounds a nonce in a key (the protocol allows 64).
const maxNonceLen = 255

// userOf is the username a qname ('-') or topic ('/') belongs to.
func userOf(name string, sep byte) string {
	if i := strings.IndexByte(name, sep); i >= 0 {
		return name[:i]
	}
	return name
}

// secretReplayed reports whether p is a secret=0 push whose md5 secure a
// retained secret push recorded (CF-P-09). cutoff is the oldest retained
// acceptance time. The Get is skipped for a topic that had no secret push
// within the retention window, the common case.
func (c *committer) secretReplayed(pt *pendingTopic, p *CFPush, cutoff int64) (bool, error) {
	if p.Secret || !p.HasSecure || pt.lastSecret < cutoff {
		return false, nil
	}
	if _, ok := c.cf.secrets[secretRef{pt.name, p.Secure}]; ok {
		return true, nil
	}
	c.key = secretKey(c.key[:0], pt.name, &p.Secure)
	t, found, err := c.s.getRecordTime(c.key)
	return found && t >= cutoff, err
}

// nonceReused reports whether p's nonce was used by an accepted push of
// its account less than NonceMemory before now (CF-P-10).
func (c *committer) nonceReused(p *CFPush, now int64) (bool, error) {
	if p.Nonce == "" {
		return false, nil
	}
	user := userOf(p.Topic, '/')
	if _, ok := c.cf.nonces[nonceRef{user, p.Nonce}]; ok {
		return true, nil
	}
	c.key = nonceKey(c.key[:0], user, p.Nonce)
	t, found, err := c.s.getRecordTime(c.key)
	return found && t > now-int64(NonceMemory), err
}

// recordGuards adds to b the records of an accepted (or duplicate) push:
// its nonce, and its digest if it is a secret push with an md5 secure.
// A duplicate records them too: a re-sent secret push may carry another
// digest (the identifier's case is part of it), and a nonce answered ok
// must not be answered ok again.
func (c *committer) recordGuards(b *pebble.Batch, pt *pendingTopic, p *CFPush, now int64) {
	if p.Nonce != "" {
		user := userOf(p.Topic, '/')
		c.key = nonceKey(c.key[:0], user, p.Nonce)
		c.addRecord(b, kindNonceExpiry, now)
		c.cf.nonces[nonceRef{user, p.Nonce}] = struct{}{}
	}
	if p.Secret && p.HasSecure {
		c.key = secretKey(c.key[:0], pt.name, &p.Secure)
		c.addRecord(b, kindSecretExpiry, now)
		c.cf.secrets[secretRef{pt.name, p.Secure}] = struct{}{}
		pt.lastSecret = now
	}
}

// addRecord sets the record c.key to time now and indexes it for expiry.
func (c *committer) addRecord(b *pebble.Batch, expiryKind byte, now int64) {
	c.val = binary.BigEndian.AppendUint64(c.val[:0], uint64(now))
	_ = b.Set(c.key, c.val, nil)
	c.val = expiryKey(c.val[:0], expiryKind, now, c.key)
	_ = b.Set(c.val, nil, nil)
}

// getRecordTime reads the time of a replay record.
func (s *Store) getRecordTime(key []byte) (int64, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: read replay record: %w", ErrStorage, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, nil
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// loadSecretTimes sets every topic's lastSecret from the secret records
// on disk, at Open.
func (s *Store) loadSecretTimes() error {
	lo, hi := kindBounds(kindSecret)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		end := bytes.IndexByte(k[2:], 0)
		if end < 0 || len(v) != 8 {
			continue
		}
		if t := s.topics[string(k[2:2+end])]; t != nil {
			t.lastSecret.Store(max(t.lastSecret.Load(), int64(binary.BigEndian.Uint64(v))))
		}
	}
	return it.Close()
}

// Bounds on the expired records one sweep deletes: a batch is applied
// every sweepRecordBatch index entries, and a pass stops after
// sweepMaxRecords of them.
const (
	sweepRecordBatch = 10000
	sweepMaxRecords  = 100000
)

// sweepRecords deletes the expiry index entries of one kind older than
// cutoff, and each record they name unless a later push renewed it.
func (c *committer) sweepRecords(expiryKind, recordKind byte, cutoff int64) error {
	lo, _ := kindBounds(expiryKind)
	hi := binary.BigEndian.AppendUint64([]byte{expiryKind, 0}, uint64(cutoff))
	for swept := 0; swept < sweepMaxRecords; swept += sweepRecordBatch {
		n, err := c.sweepRecordBatch(lo, hi, recordKind)
		if err != nil || n < sweepRecordBatch {
			return err
		}
	}
	return nil
}

// sweepRecordBatch deletes up to sweepRecordBatch index entries in
// [lo, hi), and the records they name, in one batch. It returns how many
// entries it deleted.
func (c *committer) sweepRecordBatch(lo, hi []byte, recordKind byte) (int, error) {
	s := c.s
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for ok := it.First(); ok && n < sweepRecordBatch; ok = it.Next() {
		k := it.Key()
		n++
		_ = b.Delete(k, nil)
		if len(k) < 10 {
			continue
		}
		t := int64(binary.BigEndian.Uint64(k[2:10]))
		c.key = append(append(c.key[:0], recordKind, 0), k[10:]...)
		rt, found, err := s.getRecordTime(c.key)
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		if found && rt == t {
			_ = b.Delete(c.key, nil)
		}
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.applyBatch(b); err != nil {
		s.fail(err)
		return 0, err
	}
	return n, nil
}
