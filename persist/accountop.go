package persist

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// accountChange is one account change, made durable by the committer
// between two batches, in queue order: after every write queued before
// it, before every write queued after it. A removal thereby deletes
// whatever the writes before it stored, and the revocation check of the
// writes after it (committer.revoked) already sees the new table.
type accountChange struct {
	put       Account       // written unless remove is set
	remove    string        // username whose account record is deleted
	clearData bool          // delete every key of the name's channels, topics and records
	table     *accountTable // published once the change is durable
	err       error
	done      chan struct{}
}

// runAccountChange queues ch for the committer and waits for it. It is
// refused at once, as a write is, when the Store is closed, failed,
// stalled or its write queue is full.
func (s *Store) runAccountChange(ch *accountChange) error {
	ch.done = make(chan struct{})
	if err := s.enqueue(ch); err != nil {
		return fmt.Errorf("persist: save account: %w", err)
	}
	<-ch.done
	return ch.err
}

// complete answers the change (op): the committer runs it alone,
// between groups (applyAccountChange), and completes it at once.
func (ch *accountChange) complete(_ *storeCounters, err error) {
	ch.err = err
	close(ch.done)
}

func (c *committer) applyAccountChange(ch *accountChange) error {
	s := c.s
	if err := s.errFailed(); err != nil {
		return err
	}
	if !s.watch.begin() {
		return ErrClosed // Close gave up on a stalled disk
	}
	b := s.db.NewBatch()
	defer b.Close()
	name := ch.remove
	if name == "" {
		name = ch.put.Username
	}
	if ch.clearData {
		if err := c.deleteUserData(b, name); err != nil {
			s.watch.end()
			return fmt.Errorf("persist: delete the data of %s: %w", name, err)
		}
	}
	if ch.remove != "" {
		_ = b.Delete(accountKey(nil, ch.remove), nil)
	} else {
		v, _ := json.Marshal(ch.put) // plain strings and integers: never fails
		_ = b.Set(accountKey(nil, ch.put.Username), v, nil)
	}
	err := s.guard(func() error { return s.db.Apply(b, pebble.Sync) })
	s.watch.end()
	if err != nil {
		s.fail(err)
		return fmt.Errorf("persist: save account: %w", err)
	}
	s.accounts.Store(ch.table)
	if ch.clearData {
		s.forgetUser(name)
	}
	return nil
}

// deleteUserData adds to b the deletion of every key holding data of
// username: the channels "<username>-..." (messages, tick memories,
// metadata), the topics "<username>/..." (pushes, metadata, CF-P-09
// records) and its CF-P-10 nonces. A username never holds '-', '/' or
// NUL, so these prefixes belong to it alone. The expiry index entries of
// the records are left for the sweeper, which finds no record to delete.
func (c *committer) deleteUserData(b *pebble.Batch, username string) error {
	qprefix, tprefix := username+"-", username+"/"
	prefixes := [][]byte{
		appendPrefix(nil, kindQueue, qprefix),
		appendPrefix(nil, kindTick, qprefix),
		appendPrefix(nil, kindMeta, qprefix),
		appendPrefix(nil, kindCFPush, tprefix),
		appendPrefix(nil, kindCFMeta, tprefix),
		appendPrefix(nil, kindSecret, tprefix),
		nonceKey(nil, username, ""),
	}
	for _, p := range prefixes {
		if err := c.deletePrefix(b, p); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix adds to b the deletion of every key starting with prefix
// (whose last byte is below 0xff), if there is any: a range deletion
// costs every later Pebble Get some work until it is compacted away.
func (c *committer) deletePrefix(b *pebble.Batch, prefix []byte) error {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	it, err := c.s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: end})
	if err != nil {
		return err
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return err
	}
	if found {
		_ = b.DeleteRange(prefix, end, nil)
	}
	return nil
}

// forgetUser drops username's channels and topics from memory, once
// their keys are deleted. Committer goroutine only.
func (s *Store) forgetUser(username string) {
	qprefix, tprefix := username+"-", username+"/"
	s.chanMu.Lock()
	for qname := range s.channels {
		if strings.HasPrefix(qname, qprefix) {
			delete(s.channels, qname)
		}
	}
	s.chanMu.Unlock()
	s.topicMu.Lock()
	for name := range s.topics {
		if strings.HasPrefix(name, tprefix) {
			delete(s.topics, name)
		}
	}
	s.topicMu.Unlock()
}

// revoked reports whether a write or push authorized by account id (0:
// unchecked) no longer stands when its batch is built: the account of the
// name's user (the part before sep) is gone or is another incarnation.
func (c *committer) revoked(name string, sep byte, id uint64) bool {
	if id == 0 {
		return false
	}
	a, ok := c.accounts.byName[userOf(name, sep)]
	return !ok || a.ID != id
}
