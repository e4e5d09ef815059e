package protocol

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// rotatingStore plays persist's credential rotation over a real
// store whose RotateAccount may still be a stub: lookups return an
// account's cf_api_key and secret generations as set here.
type rotatingStore struct {
	*persist.Store
	mu   sync.Mutex
	gens map[string][2]uint32 // username → CFKeyGen, SecretGen
}

func (s *rotatingStore) apply(a persist.Account, ok bool) (persist.Account, bool) {
	if ok {
		s.mu.Lock()
		g := s.gens[a.Username]
		s.mu.Unlock()
		a.CFKeyGen, a.SecretGen = g[0], g[1]
	}
	return a, ok
}

func (s *rotatingStore) AccountByName(u []byte) (persist.Account, bool) {
	return s.apply(s.Store.AccountByName(u))
}
func (s *rotatingStore) AccountByCFKey(k []byte) (persist.Account, bool) {
	return s.apply(s.Store.AccountByCFKey(k))
}
func (s *rotatingStore) AccountByAPIKey(k []byte) (persist.Account, bool) {
	return s.apply(s.Store.AccountByAPIKey(k))
}

func (s *rotatingStore) rotate(user string, c persist.Credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gens[user]
	switch c {
	case persist.CredCFAPIKey:
		g[0]++
	case persist.CredSecret:
		g[1]++
	}
	s.gens[user] = g
}

// liveSet is one of each reader and listener of an account, from one IP.
type liveSet struct {
	ezWS, ezSSE, ezPoll             *fakeConn
	cfWS, cfSSE, cfPoll, cfWSSecure *fakeConn
}

func (l *liveSet) all() []*fakeConn {
	return []*fakeConn{l.ezWS, l.ezSSE, l.ezPoll, l.cfWS, l.cfSSE, l.cfPoll, l.cfWSSecure}
}

type revokeFixture struct {
	*cfFixture
	rs *rotatingStore
}

func newRevokeFixture(t *testing.T) *revokeFixture {
	f := newCFFixture(t, Options{})
	rs := &rotatingStore{Store: f.store, gens: map[string][2]uint32{}}
	api, err := New(Options{Store: rs, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(f.loop)
	t.Cleanup(api.Close)
	f.api = api
	return &revokeFixture{cfFixture: f, rs: rs}
}

func (f *revokeFixture) request(c *fakeConn, path, query, ip string) {
	r := &engine.Request{Method: []byte("GET"), Path: []byte(path), Query: []byte(query), Header: header{},
		PeerAddr: netip.MustParseAddr(ip), ClientIP: netip.MustParseAddr(ip)}
	f.loop.do(func() { f.api.Serve(c, r) })
	f.settle()
}

// openAll opens a liveSet for acct, its Cometify listeners on its public
// key.
func (f *revokeFixture) openAll(acct persist.Account, ip string) *liveSet {
	f.t.Helper()
	open := func(path, query string) *fakeConn {
		c := newFakeConn()
		f.request(c, path, query, ip)
		if c.numReplies() > 0 {
			f.t.Fatalf("%s?%s refused: %s", path, query, c.lastReply(f.t).body)
		}
		return c
	}
	q := "qname=" + acct.Username + "-room&timeout=60"
	key := "/" + acct.CFAPIKey
	sk := md5hex(acct.CFAPIKey + acct.APISecret + md5hex("chat"))
	return &liveSet{
		ezWS: open("/read/ws", q), ezSSE: open("/read/sse", q), ezPoll: open("/read", q+"&callback=cb"),
		cfWS: open(key+"/listen", "identifiers=chat"), cfSSE: open(key+"/sse", "identifiers=chat"),
		cfPoll:     open(key+"/poll", "identifiers=chat,news&timeout=60&callback=cb"),
		cfWSSecure: open(key+"/listen", "identifiers=chat&secureKey="+sk),
	}
}

// revokedHow says how c ended: "1008 revoked", "closed", an HTTP status
// and body, or "live".
func revokedHow(c *fakeConn) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(c.replies) > 0:
		return c.replies[len(c.replies)-1].body
	case c.closeCode != 0:
		return itoa(int(c.closeCode)) + " " + c.closeWhy
	case c.closed:
		return "closed"
	}
	return "live"
}

func itoa(n int) string {
	b := appendInt(nil, int64(n))
	return string(b)
}

const (
	endWS     = "1008 revoked"
	endSSE    = "closed"
	endEZPoll = `cb({"code":"error","msg":"unknown user","status":404});`
	endCFPoll = `cb({"code":"error","msg":"credential revoked","status":401});`
)

func (f *revokeFixture) expect(what string, l *liveSet, want [7]string) {
	f.t.Helper()
	for i, c := range l.all() {
		if got := revokedHow(c); got != want[i] {
			f.t.Errorf("%s: %s: %q, want %q", what, []string{"ez ws", "ez sse", "ez poll", "cf ws", "cf sse", "cf poll", "cf ws secure"}[i], got, want[i])
		}
	}
}

var allLive = [7]string{"live", "live", "live", "live", "live", "live", "live"}

// TestRevokeOnRemove: removing an account closes every reader of its
// channels and every listener of its topics, on every transport, and
// frees their slots; another account's, even one whose name it
// prefixes, are untouched.
func TestRevokeOnRemove(t *testing.T) {
	f := newRevokeFixture(t)
	johnny, _ := f.store.AddAccount("johnny")
	john := f.openAll(f.acct, "10.6.0.1")
	other := f.openAll(johnny, "10.6.0.2")
	if n := f.slotsHeld(); n != 14 {
		t.Fatalf("%d slots held, want 14", n)
	}
	if err := f.store.RemoveAccount("john"); err != nil {
		t.Fatal(err)
	}
	f.api.AccountChanged("john")
	f.loop.sync()
	f.expect("john after rm", john, [7]string{endWS, endSSE, endEZPoll, endWS, endSSE, endCFPoll, endWS})
	f.expect("johnny", other, allLive)
	if n := f.slotsHeld(); n != 7 {
		t.Fatalf("%d slots held after rm, want johnny's 7", n)
	}
	f.loop.do(func() {
		ls := f.api.state[0]
		for q := range ls.subs {
			if strings.HasPrefix(q, "john-") {
				t.Errorf("%s still indexed", q)
			}
		}
		for tp := range ls.cfTopics {
			if strings.HasPrefix(tp, "john/") {
				t.Errorf("%s still indexed", tp)
			}
		}
	})
	// A change that revokes nothing closes nothing.
	f.api.AccountChanged("johnny")
	f.loop.sync()
	f.expect("johnny after a no-op change", other, allLive)
}

// TestRevokeOnRemoveAndAddAgain: a name removed and added again is
// another account: what the old one admitted closes, what the new one
// admitted stays.
func TestRevokeOnRemoveAndAddAgain(t *testing.T) {
	f := newRevokeFixture(t)
	old := f.openAll(f.acct, "10.6.1.1")
	if err := f.store.RemoveAccount("john"); err != nil {
		t.Fatal(err)
	}
	again, err := f.store.AddAccount("john")
	if err != nil {
		t.Fatal(err)
	}
	fresh := f.openAll(again, "10.6.1.2")
	f.api.AccountChanged("john") // the rm's and the add's, coalesced
	f.api.AccountChanged("john")
	f.loop.sync()
	f.expect("old incarnation", old, [7]string{endWS, endSSE, endEZPoll, endWS, endSSE, endCFPoll, endWS})
	f.expect("new incarnation", fresh, allLive)
}

// rotations are A-04's rotation cases: the credential, then how each
// member of a liveSet admitted before it ends.
var rotations = []struct {
	cred persist.Credential
	want [7]string
}{
	{persist.CredCFAPIKey, [7]string{"live", "live", "live", endWS, endSSE, endCFPoll, endWS}},
	{persist.CredSecret, [7]string{"live", "live", "live", "live", "live", "live", endWS}},
	{persist.CredAPIKey, allLive},
}

// TestRevokeOnRotate: rotating the cf_api_key closes the Cometify
// listeners (EZComet readers stay: they need no key); rotating the secret
// closes the listeners admitted with a secureKey; rotating the private
// api_key closes nothing live. Listeners admitted after the rotation stay.
func TestRevokeOnRotate(t *testing.T) {
	for _, tc := range rotations {
		f := newRevokeFixture(t)
		before := f.openAll(f.acct, "10.6.2.1")
		f.rs.rotate("john", tc.cred)
		after := f.openAll(f.acct, "10.6.2.2")
		f.api.AccountChanged("john")
		f.loop.sync()
		f.expect("before rotating", before, tc.want)
		f.expect("after rotating", after, allLive)
		closed := 0
		for _, w := range tc.want {
			if w != "live" {
				closed++
			}
		}
		if n := f.slotsHeld(); n != 14-closed {
			t.Fatalf("cred %d: %d slots held, want %d", tc.cred, n, 14-closed)
		}
	}
}

// TestRevokeOnRotateWithStore is TestRevokeOnRotate's cases over
// persist's own RotateAccount: new keys, new generations.
func TestRevokeOnRotateWithStore(t *testing.T) {
	for _, tc := range rotations {
		f := newCFFixture(t, Options{})
		rf := &revokeFixture{cfFixture: f}
		before := rf.openAll(f.acct, "10.6.3.1")
		acct, err := f.store.RotateAccount("john", tc.cred)
		if err != nil && strings.Contains(err.Error(), "not implemented") {
			t.Skip("waits for persist RotateAccount")
		}
		if err != nil {
			t.Fatal(err)
		}
		after := rf.openAll(acct, "10.6.3.2")
		f.api.AccountChanged("john")
		f.loop.sync()
		rf.expect("before rotating", before, tc.want)
		rf.expect("after rotating", after, allLive)
	}
}

// TestAccountChangedBeforeAttach: cmd may wire OnAccountChange before the
// engine runs.
func TestAccountChangedBeforeAttach(t *testing.T) {
	api, err := New(Options{Store: &rotatingStore{}})
	if err != nil {
		t.Fatal(err)
	}
	api.AccountChanged("john")
}
