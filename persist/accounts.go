package persist

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// accountTable is an immutable snapshot of every account. Lookups index
// the maps with string(b), which the compiler does without allocating.
type accountTable struct {
	byKey  map[string]*Account
	byName map[string]*Account
	sorted []Account // by username
}

func newAccountTable(list []Account) *accountTable {
	slices.SortFunc(list, func(a, b Account) int { return strings.Compare(a.Username, b.Username) })
	t := &accountTable{
		byKey:  make(map[string]*Account, len(list)),
		byName: make(map[string]*Account, len(list)),
		sorted: list,
	}
	for i := range list {
		a := &list[i]
		t.byKey[a.APIKey] = a
		t.byName[a.Username] = a
	}
	return t
}

func (s *Store) loadAccounts() (*accountTable, error) {
	lo, hi := kindBounds(kindAccount)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var list []Account
	for it.First(); it.Valid(); it.Next() {
		var a Account
		if err := json.Unmarshal(it.Value(), &a); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("account %q: %w", it.Key()[2:], err)
		}
		list = append(list, a)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return newAccountTable(list), nil
}

// ValidUsername reports whether name matches ^[a-z0-9][a-z0-9_]{0,31}$.
func ValidUsername(name string) bool {
	if len(name) < 1 || len(name) > 32 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '_' && i > 0:
		default:
			return false
		}
	}
	return true
}

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// AddAccount creates an account with a fresh api_key (32 lowercase hex)
// and api_secret (32 chars of [A-Za-z0-9_-]) from crypto/rand. It returns
// once the account is synced to disk. It blocks on I/O: not for event loops.
func (s *Store) AddAccount(username string) (Account, error) {
	if !ValidUsername(username) {
		return Account{}, fmt.Errorf("persist: bad username %q: want ^[a-z0-9][a-z0-9_]{0,31}$", username)
	}
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	old := s.accounts.Load()
	if _, ok := old.byName[username]; ok {
		return Account{}, ErrAccountExists
	}
	var raw [16 + 32]byte
	for {
		_, _ = rand.Read(raw[:]) // never fails (crypto/rand docs)
		if _, clash := old.byKey[hex.EncodeToString(raw[:16])]; !clash {
			break
		}
	}
	secret := make([]byte, 32)
	for i, b := range raw[16:] {
		secret[i] = secretAlphabet[b&63] // 64 symbols: no modulo bias
	}
	a := Account{
		Username:          username,
		APIKey:            hex.EncodeToString(raw[:16]),
		APISecret:         string(secret),
		MaxListenersPerIP: DefaultMaxListenersPerIP,
	}
	if err := s.putAccount(old, a, ""); err != nil {
		return Account{}, err
	}
	return a, nil
}

// putAccount writes a (or deletes remove when a is zero) durably and
// publishes the new table. accountMu must be held.
func (s *Store) putAccount(old *accountTable, a Account, remove string) error {
	if err := s.writable(); err != nil {
		return err
	}
	list := make([]Account, 0, len(old.sorted)+1)
	for _, o := range old.sorted {
		if o.Username != a.Username && o.Username != remove {
			list = append(list, o)
		}
	}
	var err error
	if remove != "" {
		err = s.guard(func() error { return s.db.Delete(accountKey(nil, remove), pebble.Sync) })
	} else {
		v, _ := json.Marshal(a)
		err = s.guard(func() error { return s.db.Set(accountKey(nil, a.Username), v, pebble.Sync) })
		list = append(list, a)
	}
	if err != nil {
		return fmt.Errorf("persist: save account: %w", err)
	}
	s.accounts.Store(newAccountTable(list))
	return nil
}

// writable returns ErrClosed or the sticky storage error.
func (s *Store) writable() error {
	s.closeMu.RLock()
	closed := s.closed
	s.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.errFailed()
}

// Accounts returns every account sorted by username; the slice is the
// caller's.
func (s *Store) Accounts() []Account {
	return slices.Clone(s.accounts.Load().sorted)
}

// AccountByKey finds the account owning apiKey. Lock-free and
// allocation-free: meant for event loops, once per request.
func (s *Store) AccountByKey(apiKey []byte) (Account, bool) {
	a, ok := s.accounts.Load().byKey[string(apiKey)]
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// AccountByName finds an account by username. Lock-free and
// allocation-free.
func (s *Store) AccountByName(username []byte) (Account, bool) {
	a, ok := s.accounts.Load().byName[string(username)]
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// RemoveAccount deletes an account durably (ErrNoAccount if absent). Its
// channels' messages stay on disk and come back if the name is re-added.
func (s *Store) RemoveAccount(username string) error {
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	old := s.accounts.Load()
	if _, ok := old.byName[username]; !ok {
		return ErrNoAccount
	}
	return s.putAccount(old, Account{}, username)
}

// SetMaxListenersPerIP changes an account's listener cap per client IP
// (n >= 1), durably.
func (s *Store) SetMaxListenersPerIP(username string, n int) error {
	if n < 1 {
		return fmt.Errorf("persist: max listeners per IP %d < 1", n)
	}
	s.accountMu.Lock()
	defer s.accountMu.Unlock()
	old := s.accounts.Load()
	a, ok := old.byName[username]
	if !ok {
		return ErrNoAccount
	}
	na := *a
	na.MaxListenersPerIP = n
	return s.putAccount(old, na, "")
}
