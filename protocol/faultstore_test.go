package protocol

import (
	"sync"
	"testing"

	"github.com/halleypush/halley/persist"
)

// faultStore is a real store whose answers a test can replace: the
// outcomes the real store reaches only through a disk fault, a stall, an
// account removed while a write waited, or a replay its committer caught.
// It records what the protocol handed it.
type faultStore struct {
	*persist.Store
	mu        sync.Mutex
	unhealthy error                  // Healthy's answer
	pushErr   error                  // if set, every push is refused with it
	writeErr  error                  // if set, every write is refused with it
	pushID    uint64                 // if set, every push is "stored" with this id
	account   func(*persist.Account) // if set, edits every account looked up
	pushes    []persist.CFPush
	writes    []persist.EZWrite
}

func (s *faultStore) set(fn func(s *faultStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *faultStore) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unhealthy != nil {
		return s.unhealthy
	}
	return s.Store.Healthy()
}

func (s *faultStore) edit(a persist.Account, ok bool) (persist.Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok && s.account != nil {
		s.account(&a)
	}
	return a, ok
}

func (s *faultStore) AccountByAPIKey(k []byte) (persist.Account, bool) {
	return s.edit(s.Store.AccountByAPIKey(k))
}

func (s *faultStore) AccountByCFKey(k []byte) (persist.Account, bool) {
	return s.edit(s.Store.AccountByCFKey(k))
}

func (s *faultStore) CFPushTo(p persist.CFPush, done persist.CFCompletion) {
	s.mu.Lock()
	s.pushes = append(s.pushes, p)
	err, id := s.pushErr, s.pushID
	s.mu.Unlock()
	switch {
	case err != nil:
		done.CFPushDone(persist.CFPushResult{Err: err})
	case id != 0:
		done.CFPushDone(persist.CFPushResult{Msg: persist.CFMessage{ID: id, Secret: p.Secret, Text: p.Text}})
	default:
		s.Store.CFPushTo(p, done)
	}
}

func (s *faultStore) EZWriteTo(w persist.EZWrite, done persist.WriteCompletion) {
	s.mu.Lock()
	s.writes = append(s.writes, w)
	err := s.writeErr
	s.mu.Unlock()
	if err != nil {
		done.WriteDone(persist.EZWriteResult{Err: err})
		return
	}
	s.Store.EZWriteTo(w, done)
}

func (s *faultStore) lastPush(t *testing.T) persist.CFPush {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pushes) == 0 {
		t.Fatal("no push reached the store")
	}
	return s.pushes[len(s.pushes)-1]
}

// newFaultFixture is newCFFixture with its API over a faultStore.
func newFaultFixture(t *testing.T) (*cfFixture, *faultStore) {
	t.Helper()
	f := newCFFixture(t, Options{})
	fs := &faultStore{Store: f.store}
	api, err := New(Options{Store: fs, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(f.loop)
	t.Cleanup(api.Close)
	f.api = api
	return f, fs
}
