package persist

import (
	"crypto/rand"
	"encoding/binary"
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
	byKey   map[string]*Account // private api_key
	byCFKey map[string]*Account // public cf_api_key
	byName  map[string]*Account
	sorted  []Account // by username
}

func newAccountTable(list []Account) *accountTable {
	slices.SortFunc(list, func(a, b Account) int { return strings.Compare(a.Username, b.Username) })
	t := &accountTable{
		byKey:   make(map[string]*Account, len(list)),
		byCFKey: make(map[string]*Account, len(list)),
		byName:  make(map[string]*Account, len(list)),
		sorted:  list,
	}
	for i := range list {
		a := &list[i]
		t.byKey[a.APIKey] = a
		if a.CFAPIKey != "" {
			t.byCFKey[a.CFAPIKey] = a
		}
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
	a := Account{
		Username:          username,
		APIKey:            old.newKey(),
		APISecret:         newSecret(),
		MaxListenersPerIP: DefaultMaxListenersPerIP,
		ID:                newAccountID(),
	}
	for a.CFAPIKey = old.newKey(); a.CFAPIKey == a.APIKey; a.CFAPIKey = old.newKey() {
	}
	if err := s.putAccount(old, a, ""); err != nil {
		return Account{}, err
	}
	return a, nil
}

// newKey returns 32 lowercase hex from crypto/rand that no account uses
// as either key.
func (t *accountTable) newKey() string {
	var raw [16]byte
	for {
		_, _ = rand.Read(raw[:]) // never fails (crypto/rand docs)
		k := hex.EncodeToString(raw[:])
		_, a := t.byKey[k]
		_, b := t.byCFKey[k]
		if !a && !b {
			return k
		}
	}
}

// newSecret returns 32 chars of [A-Za-z0-9_-] from crypto/rand.
func newSecret() string {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret := make([]byte, len(raw))
	for i, b := range raw {
		secret[i] = secretAlphabet[b&63] // 64 symbols: no modulo bias
	}
	return string(secret)
}

// newAccountID returns a random non-zero incarnation id.
func newAccountID() uint64 {
	for {
		var raw [8]byte
		_, _ = rand.Read(raw[:])
		if id := binary.BigEndian.Uint64(raw[:]); id != 0 {
			return id
		}
	}
}

// putAccount writes a (or deletes remove when a is zero) durably and
// publishes the new table. accountMu must be held.
func (s *Store) putAccount(old *accountTable, a Account, remove string) error {
	if err := s.Healthy(); err != nil {
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

// Accounts returns every account sorted by username; the slice is the
// caller's.
func (s *Store) Accounts() []Account {
	return slices.Clone(s.accounts.Load().sorted)
}

// AccountByAPIKey finds the account whose private api_key is apiKey
// (EZComet writes). Lock-free and allocation-free: meant for event
// loops, once per request.
func (s *Store) AccountByAPIKey(apiKey []byte) (Account, bool) {
	a, ok := s.accounts.Load().byKey[string(apiKey)]
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// AccountByCFKey finds the account whose public cf_api_key is key
// (Cometify paths). Lock-free and allocation-free.
func (s *Store) AccountByCFKey(key []byte) (Account, bool) {
	a, ok := s.accounts.Load().byCFKey[string(key)]
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

// RotateAccount replaces one credential of an account durably and
// returns the account with its new value. Stub until the
// account model lands (issue 15).
func (s *Store) RotateAccount(username string, c Credential) (Account, error) {
	return Account{}, fmt.Errorf("persist: rotate %s: not implemented yet", username)
}

// SetRequireSignature sets an account's CF-P-10 mode: "" or "v2".
// Stub until the account model lands (issue 15).
func (s *Store) SetRequireSignature(username, mode string) error {
	return fmt.Errorf("persist: require-signature %s: not implemented yet", username)
}

// Migrated returns the accounts Open converted from the single-key
// format of earlier versions, with their new credentials, for the
// opener to show once. Stub until migration lands (issue 15).
func (s *Store) Migrated() []Account { return nil }

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
