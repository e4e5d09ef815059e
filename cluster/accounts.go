package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/persist"
	"github.com/nats-io/nats.go"
)

// Accounts on light nodes (A-04 service-wide). The store node owns the
// account table; after each change is durable it publishes the username
// on <prefix>.accounts (PublishAccountChange, from
// persist.Options.OnAccountChange). A light node keeps an AccountCache:
// the whole table, fetched at start, again after each notice and after
// each reconnect (a notice may have been lost). Accounts are few and
// change rarely, so refetching the table is simpler than patching it, and
// a lost notice cannot leave it wrong for longer than the next refetch.
// Writes carry the AccountID that authorized them and the store node
// refuses a revoked one, so a stale cache never writes for a removed
// account.

// frames of the account table read
const (
	frameAccounts       = 'L' // request: the whole table
	frameAccountsAnswer = 'l' // answer: JSON array of persist.Account
)

// maxAccountsFrame bounds the JSON a light node accepts.
const maxAccountsFrame = 64 << 20

// accountsSubject carries change notices.
func (l *Link) accountsSubject() string { return l.opts.Prefix + ".accounts" }

// PublishAccountChange tells every light node that username's account
// changed (added, removed, rotated, set). Store node; never blocks.
func (l *Link) PublishAccountChange(username string) {
	l.send(l.accountsSubject(), "", []byte(username))
}

// appendAccounts appends the frame of an account table answer.
func appendAccounts(b []byte, accounts []persist.Account) ([]byte, error) {
	js, err := json.Marshal(accounts)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode accounts: %w", err)
	}
	return append(appendHeader(b, frameAccountsAnswer), js...), nil
}

// decodeAccounts decodes an account table answer.
func decodeAccounts(b []byte) ([]persist.Account, error) {
	d := decoder{b: b}
	d.expect(frameAccountsAnswer)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) > maxAccountsFrame {
		return nil, fmt.Errorf("cluster: bad frame: account table of %d bytes", len(d.b))
	}
	var as []persist.Account
	if err := json.Unmarshal(d.b, &as); err != nil {
		return nil, fmt.Errorf("cluster: bad frame: accounts: %w", err)
	}
	return as, nil
}

// accountTable is one immutable copy of the table: lookups read it
// without a lock.
type accountTable struct {
	byName, byKey, byCFKey map[string]persist.Account
}

func newAccountTable(as []persist.Account) *accountTable {
	t := &accountTable{
		byName:  make(map[string]persist.Account, len(as)),
		byKey:   make(map[string]persist.Account, len(as)),
		byCFKey: make(map[string]persist.Account, len(as)),
	}
	for _, a := range as {
		t.byName[a.Username] = a
		t.byKey[a.APIKey] = a
		t.byCFKey[a.CFAPIKey] = a
	}
	return t
}

// AccountCache is a light node's copy of the store node's account table,
// with persist.Store's lookup methods.
type AccountCache struct {
	l        *Link
	table    atomic.Pointer[accountTable]
	onChange func(username string)
	kick     chan struct{}
	done     chan struct{}
	exited   chan struct{}
	sub      *nats.Subscription
	retry    time.Duration
}

// FollowAccounts fetches the account table from the store node and keeps
// it current. onChange runs after the cache shows a change, once per
// username whose account changed (appeared, vanished or differs), on the
// cache's goroutine; it must not block (the protocol's AccountChanged
// posts to the loops). While the store node cannot be reached the cache
// keeps its last table and retries every second.
func (l *Link) FollowAccounts(ctx context.Context, onChange func(username string)) (*AccountCache, error) {
	if onChange == nil {
		onChange = func(string) {}
	}
	c := &AccountCache{l: l, onChange: onChange, kick: make(chan struct{}, 1),
		done: make(chan struct{}), exited: make(chan struct{}), retry: time.Second}
	// Subscribe before the first fetch, so that no change falls between.
	sub, err := l.nc.Subscribe(l.accountsSubject(), func(*nats.Msg) { c.refetch() })
	if err != nil {
		return nil, fmt.Errorf("cluster: follow accounts: %w", err)
	}
	c.sub = sub
	as, err := l.fetchAccounts(ctx)
	if err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	c.table.Store(newAccountTable(as))
	l.mu.Lock()
	l.accountCaches = append(l.accountCaches, c)
	l.mu.Unlock()
	go c.run()
	return c, nil
}

// Close stops following; lookups keep answering from the last table.
func (c *AccountCache) Close() {
	_ = c.sub.Unsubscribe()
	close(c.done)
	<-c.exited
}

// refetch asks the cache's goroutine for a fresh table; never blocks.
func (c *AccountCache) refetch() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *AccountCache) run() {
	defer close(c.exited)
	var retry <-chan time.Time
	for {
		select {
		case <-c.kick:
		case <-retry:
		case <-c.done:
			return
		}
		retry = nil
		ctx, cancel := context.WithTimeout(context.Background(), c.l.opts.RequestTimeout)
		as, err := c.l.fetchAccounts(ctx)
		cancel()
		if err != nil {
			c.l.opts.Logf("cluster: refetch accounts: %v", err)
			retry = time.After(c.retry)
			continue
		}
		c.apply(newAccountTable(as))
	}
}

// apply installs t and reports every username whose account changed.
func (c *AccountCache) apply(t *accountTable) {
	old := c.table.Swap(t)
	for name, a := range t.byName {
		if was, ok := old.byName[name]; !ok || was != a {
			c.onChange(name)
		}
	}
	for name := range old.byName {
		if _, ok := t.byName[name]; !ok {
			c.onChange(name)
		}
	}
}

// fetchAccounts reads the table from the store node.
func (l *Link) fetchAccounts(ctx context.Context) ([]persist.Account, error) {
	m, err := l.request(ctx, appendHeader(nil, frameAccounts))
	if err != nil {
		return nil, err
	}
	as, err := decodeAccounts(m.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: cluster: accounts: %w", persist.ErrStorage, err)
	}
	return as, nil
}

// AccountByAPIKey is persist.Store.AccountByAPIKey on the cached table.
// Lock-free and allocation-free.
func (c *AccountCache) AccountByAPIKey(apiKey []byte) (persist.Account, bool) {
	a, ok := c.table.Load().byKey[string(apiKey)]
	return a, ok
}

// AccountByCFKey is persist.Store.AccountByCFKey on the cached table.
func (c *AccountCache) AccountByCFKey(key []byte) (persist.Account, bool) {
	a, ok := c.table.Load().byCFKey[string(key)]
	return a, ok
}

// AccountByName is persist.Store.AccountByName on the cached table.
func (c *AccountCache) AccountByName(username []byte) (persist.Account, bool) {
	a, ok := c.table.Load().byName[string(username)]
	return a, ok
}
