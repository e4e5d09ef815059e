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

// AddAccount creates an account with a fresh api_key and cf_api_key (32
// lowercase hex each, distinct from every key of every account), an
// api_secret (32 chars of [A-Za-z0-9_-]) and an id, all from crypto/rand.
// Whatever data an earlier account of that name left (a directory written
// before removal deleted data) is deleted with it, so the account starts
// empty. It returns once the account is synced and visible to lookups,
// after OnAccountChange. It blocks on I/O: not for event loops.
func (s *Store) AddAccount(username string) (Account, error) {
	if !ValidUsername(username) {
		return Account{}, fmt.Errorf("persist: bad username %q: want ^[a-z0-9][a-z0-9_]{0,31}$", username)
	}
	var a Account
	err := s.changeAccount(username, func(t *accountTable) (accountChange, error) {
		if _, ok := t.byName[username]; ok {
			return accountChange{}, ErrAccountExists
		}
		a = Account{
			Username:          username,
			APIKey:            t.newKey(),
			APISecret:         newSecret(),
			MaxListenersPerIP: DefaultMaxListenersPerIP,
			ID:                newAccountID(),
		}
		for a.CFAPIKey = t.newKey(); a.CFAPIKey == a.APIKey; a.CFAPIKey = t.newKey() {
		}
		return accountChange{put: a, clearData: true, table: t.with(a)}, nil
	})
	if err != nil {
		return Account{}, err
	}
	return a, nil
}

// newKey returns 32 lowercase hex from crypto/rand that no account uses
// as either key.
func (t *accountTable) newKey() string { return newKeyAvoiding(t.taken) }

// taken reports whether an account uses k as either key.
func (t *accountTable) taken(k string) bool {
	_, a := t.byKey[k]
	_, b := t.byCFKey[k]
	return a || b
}

// newKeyAvoiding returns 32 lowercase hex from crypto/rand for which taken
// is false.
func newKeyAvoiding(taken func(string) bool) string {
	var raw [16]byte
	for {
		_, _ = rand.Read(raw[:]) // never fails (crypto/rand docs)
		if k := hex.EncodeToString(raw[:]); !taken(k) {
			return k
		}
	}
}

// with returns a copy of t in which a replaces the account of its name
// (or is added).
func (t *accountTable) with(a Account) *accountTable {
	list := make([]Account, 0, len(t.sorted)+1)
	for _, o := range t.sorted {
		if o.Username != a.Username {
			list = append(list, o)
		}
	}
	return newAccountTable(append(list, a))
}

// without returns a copy of t without username's account.
func (t *accountTable) without(username string) *accountTable {
	list := make([]Account, 0, len(t.sorted))
	for _, o := range t.sorted {
		if o.Username != username {
			list = append(list, o)
		}
	}
	return newAccountTable(list)
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

// changeAccount makes one account change: build sees the current table
// (account changes are serialised) and says what to write; the committer
// makes it durable and publishes it in queue order (accountop.go); then
// OnAccountChange runs, on this goroutine, without any lock held.
func (s *Store) changeAccount(username string, build func(t *accountTable) (accountChange, error)) error {
	s.accountMu.Lock()
	ch, err := build(s.accounts.Load())
	if err == nil {
		err = s.runAccountChange(&ch)
	}
	s.accountMu.Unlock()
	if err != nil {
		return err
	}
	if f := s.opts.OnAccountChange; f != nil {
		f(username)
	}
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

// RemoveAccount deletes an account and all its data durably: its
// channels' messages, tick memories and metadata (qnames "<username>-..."),
// its topics' pushes and metadata ("<username>/..."), and the CF-P-09/10
// records of its pushes; its channels and topics leave memory. The
// committer runs it after every write queued before it; writes and pushes
// authorized for this incarnation (EZWrite.AccountID, CFPush.AccountID)
// that it builds later get ErrRevoked. ErrNoAccount if absent. Blocks on
// I/O.
func (s *Store) RemoveAccount(username string) error {
	return s.changeAccount(username, func(t *accountTable) (accountChange, error) {
		if _, ok := t.byName[username]; !ok {
			return accountChange{}, ErrNoAccount
		}
		return accountChange{remove: username, clearData: true, table: t.without(username)}, nil
	})
}

// RotateAccount replaces one credential of an account with a fresh one,
// durably, and returns the account as it now is: CredAPIKey
// the private api_key, CredCFAPIKey the public cf_api_key (CFKeyGen+1),
// CredSecret the api_secret (SecretGen+1). A new key is distinct from
// every key of every account. Blocks on I/O.
func (s *Store) RotateAccount(username string, c Credential) (Account, error) {
	var a Account
	err := s.changeAccount(username, func(t *accountTable) (accountChange, error) {
		cur, ok := t.byName[username]
		if !ok {
			return accountChange{}, ErrNoAccount
		}
		a = *cur
		switch c {
		case CredAPIKey:
			a.APIKey = t.newKey()
		case CredCFAPIKey:
			a.CFAPIKey = t.newKey()
			a.CFKeyGen++
		case CredSecret:
			a.APISecret = newSecret()
			a.SecretGen++
		default:
			return accountChange{}, fmt.Errorf("persist: rotate %s: unknown credential %d", username, c)
		}
		return accountChange{put: a, table: t.with(a)}, nil
	})
	if err != nil {
		return Account{}, err
	}
	return a, nil
}

// SetRequireSignature sets an account's CF-P-10 mode durably: "v2" (a
// push must carry the HMAC signature) or "" (md5 secure or signature).
// Blocks on I/O.
func (s *Store) SetRequireSignature(username, mode string) error {
	if mode != "" && mode != "v2" {
		return fmt.Errorf("persist: require-signature %q: want \"v2\" or \"\"", mode)
	}
	return s.updateAccount(username, func(a *Account) { a.RequireSignature = mode })
}

// SetMaxListenersPerIP changes an account's listener cap per client IP
// (n >= 1), durably. Blocks on I/O.
func (s *Store) SetMaxListenersPerIP(username string, n int) error {
	if n < 1 {
		return fmt.Errorf("persist: max listeners per IP %d < 1", n)
	}
	return s.updateAccount(username, func(a *Account) { a.MaxListenersPerIP = n })
}

// updateAccount changes a setting of an existing account.
func (s *Store) updateAccount(username string, set func(a *Account)) error {
	return s.changeAccount(username, func(t *accountTable) (accountChange, error) {
		cur, ok := t.byName[username]
		if !ok {
			return accountChange{}, ErrNoAccount
		}
		a := *cur
		set(&a)
		return accountChange{put: a, table: t.with(a)}, nil
	})
}
