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
	r := writeReqPool.Get().(*writeReq)
	r.acct = ch
	if err := s.enqueue(r); err != nil {
		return fmt.Errorf("persist: save account: %w", err)
	}
	<-ch.done
	return ch.err
}

// changeAccount runs r's account change on the committer goroutine and
// answers it.
func (c *committer) changeAccount(r *writeReq) {
	ch := r.acct
	*r = writeReq{}
	writeReqPool.Put(r)
	ch.err = c.applyAccountChange(ch)
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
		c.deleteUserData(b, name)
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
// metadata) and the topics "<username>/..." (pushes, metadata). A username
// never holds '-' or '/', so these prefixes belong to it alone.
func (c *committer) deleteUserData(b *pebble.Batch, username string) {
	qprefix, tprefix := username+"-", username+"/"
	for _, kind := range []byte{kindQueue, kindTick, kindMeta} {
		deletePrefix(b, appendPrefix(nil, kind, qprefix))
	}
	for _, kind := range []byte{kindCFPush, kindCFMeta} {
		deletePrefix(b, appendPrefix(nil, kind, tprefix))
	}
}

// deletePrefix adds to b the deletion of every key starting with prefix,
// whose last byte is below 0xff.
func deletePrefix(b *pebble.Batch, prefix []byte) {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	_ = b.DeleteRange(prefix, end, nil)
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
	user := name
	if i := strings.IndexByte(name, sep); i >= 0 {
		user = name[:i]
	}
	a, ok := c.accounts.byName[user]
	return !ok || a.ID != id
}
