package persist

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestAccounts(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	secretRE := regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)

	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"bob", true},
		{"alice", true},
		{"a", true},
		{"0day_x", true},
		{"abcdefghijklmnopqrstuvwxyz012345", true}, // 32
		{"abcdefghijklmnopqrstuvwxyz0123456", false},
		{"", false},
		{"_alice", false},
		{"Alice", false},
		{"al-ice", false},
		{"al ice", false},
		{"alicé", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := s.AddAccount(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("AddAccount(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if a.Username != tc.name || !keyRE.MatchString(a.APIKey) || !secretRE.MatchString(a.APISecret) || a.MaxListenersPerIP != DefaultMaxListenersPerIP {
				t.Fatalf("account %+v", a)
			}
		})
	}
	if _, err := s.AddAccount("bob"); !errors.Is(err, ErrAccountExists) {
		t.Fatalf("second add: %v", err)
	}
	list := s.Accounts()
	var names []string
	for _, a := range list {
		names = append(names, a.Username)
	}
	if got := names; len(got) != 5 || got[0] != "0day_x" || got[1] != "a" || got[2] != "abcdefghijklmnopqrstuvwxyz012345" || got[3] != "alice" || got[4] != "bob" {
		t.Fatalf("Accounts order %v", got)
	}
	list[0].Username = "mutated" // the caller's copy
	if s.Accounts()[0].Username != "0day_x" {
		t.Fatal("Accounts shares its slice")
	}

	bob, _ := s.AccountByName([]byte("bob"))
	if a, ok := s.AccountByAPIKey([]byte(bob.APIKey)); !ok || a != bob {
		t.Fatalf("AccountByKey %+v %v", a, ok)
	}
	if _, ok := s.AccountByAPIKey([]byte("0123456789abcdef0123456789abcdef")); ok {
		t.Fatal("unknown key found")
	}
	if err := s.SetMaxListenersPerIP("bob", 3); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountByAPIKey([]byte(bob.APIKey)); a.MaxListenersPerIP != 3 {
		t.Fatalf("after set %+v", a)
	}
	if err := s.SetMaxListenersPerIP("bob", 0); err == nil {
		t.Fatal("set 0 accepted")
	}
	if err := s.SetMaxListenersPerIP("nobody", 3); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("set unknown: %v", err)
	}
	if err := s.RemoveAccount("bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveAccount("bob"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("second rm: %v", err)
	}
	if _, ok := s.AccountByAPIKey([]byte(bob.APIKey)); ok {
		t.Fatal("removed account still found by key")
	}
	if _, ok := s.AccountByName([]byte("bob")); ok {
		t.Fatal("removed account still found by name")
	}
	if len(s.Accounts()) != 4 {
		t.Fatal("Accounts after rm")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAccount("late"); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

func TestAccountLookupAllocs(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	a, err := s.AddAccount("alice")
	if err != nil {
		t.Fatal(err)
	}
	key, name, miss := []byte(a.APIKey), []byte("alice"), []byte("nobody")
	var sink Account
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"by key", func() { sink, _ = s.AccountByAPIKey(key) }},
		{"by name", func() { sink, _ = s.AccountByName(name) }},
		{"miss", func() { sink, _ = s.AccountByName(miss) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocs per lookup, want 0", tc.name, n)
		}
	}
	_ = sink
}

func BenchmarkAccountByAPIKey(b *testing.B) {
	s := openTest(b, testOptions(b, ""))
	a, _ := s.AddAccount("alice")
	key := []byte(a.APIKey)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := s.AccountByAPIKey(key); !ok {
				b.Fatal("not found")
			}
		}
	})
}

var keyRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// allKeys checks that every key of every account is 32 lowercase hex and
// used once, as one kind of key.
func allKeysDistinct(t *testing.T, s *Store) {
	t.Helper()
	seen := map[string]string{}
	for _, a := range s.Accounts() {
		for kind, k := range map[string]string{"api_key": a.APIKey, "cf_api_key": a.CFAPIKey} {
			if !keyRE.MatchString(k) {
				t.Fatalf("%s %s = %q", a.Username, kind, k)
			}
			if other, dup := seen[k]; dup {
				t.Fatalf("%s %s is also %s", a.Username, kind, other)
			}
			seen[k] = a.Username + " " + kind
		}
		if a.ID == 0 {
			t.Fatalf("%s has no id", a.Username)
		}
	}
}

// TestAccountKeys: two distinct keys per account, each found only
// by its own lookup: the public key never writes, the private one is not
// a Cometify key.
func TestAccountKeys(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	ids := map[uint64]bool{}
	for _, name := range []string{"alice", "bob", "carol"} {
		a, err := s.AddAccount(name)
		if err != nil {
			t.Fatal(err)
		}
		if a.CFKeyGen != 0 || a.SecretGen != 0 || a.RequireSignature != "" || ids[a.ID] {
			t.Fatalf("new account %+v", a)
		}
		ids[a.ID] = true
		if b, ok := s.AccountByCFKey([]byte(a.CFAPIKey)); !ok || b != a {
			t.Fatalf("AccountByCFKey(%s) = %+v %v", name, b, ok)
		}
		if _, ok := s.AccountByCFKey([]byte(a.APIKey)); ok {
			t.Fatalf("%s: the private api_key found as a cf_api_key", name)
		}
		if _, ok := s.AccountByAPIKey([]byte(a.CFAPIKey)); ok {
			t.Fatalf("%s: the public cf_api_key found as an api_key", name)
		}
	}
	allKeysDistinct(t, s)
	// A name added again is another incarnation.
	old, _ := s.AccountByName([]byte("bob"))
	if err := s.RemoveAccount("bob"); err != nil {
		t.Fatal(err)
	}
	again, err := s.AddAccount("bob")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == old.ID || again.APIKey == old.APIKey || again.CFAPIKey == old.CFAPIKey {
		t.Fatalf("re-added bob shares credentials or id with the removed one: %+v / %+v", again, old)
	}
}

// TestRotateAccount: each rotation replaces exactly one
// credential with a fresh distinct value, bumps its generation, stops
// the old value from finding the account, and survives a reopen.
func TestRotateAccount(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	if _, err := s.AddAccount("bob"); err != nil {
		t.Fatal(err)
	}
	a, _ := s.AddAccount("alice")
	for _, tc := range []struct {
		cred Credential
		want func(old, new Account) bool
	}{
		{CredAPIKey, func(o, n Account) bool {
			return n.APIKey != o.APIKey && n.CFAPIKey == o.CFAPIKey && n.APISecret == o.APISecret && n.CFKeyGen == o.CFKeyGen && n.SecretGen == o.SecretGen
		}},
		{CredCFAPIKey, func(o, n Account) bool {
			return n.APIKey == o.APIKey && n.CFAPIKey != o.CFAPIKey && n.APISecret == o.APISecret && n.CFKeyGen == o.CFKeyGen+1 && n.SecretGen == o.SecretGen
		}},
		{CredSecret, func(o, n Account) bool {
			return n.APIKey == o.APIKey && n.CFAPIKey == o.CFAPIKey && n.APISecret != o.APISecret && n.CFKeyGen == o.CFKeyGen && n.SecretGen == o.SecretGen+1
		}},
		{CredCFAPIKey, func(o, n Account) bool { return n.CFKeyGen == 2 && n.CFAPIKey != o.CFAPIKey }},
	} {
		n, err := s.RotateAccount("alice", tc.cred)
		if err != nil {
			t.Fatal(err)
		}
		if n.ID != a.ID || n.Username != "alice" || !tc.want(a, n) {
			t.Fatalf("rotate %d: %+v -> %+v", tc.cred, a, n)
		}
		if got, _ := s.AccountByName([]byte("alice")); got != n {
			t.Fatalf("rotate %d: lookup %+v, returned %+v", tc.cred, got, n)
		}
		if _, ok := s.AccountByAPIKey([]byte(n.APIKey)); !ok {
			t.Fatalf("rotate %d: new api_key not found", tc.cred)
		}
		if _, ok := s.AccountByCFKey([]byte(n.CFAPIKey)); !ok {
			t.Fatalf("rotate %d: new cf_api_key not found", tc.cred)
		}
		if n.APIKey != a.APIKey {
			if _, ok := s.AccountByAPIKey([]byte(a.APIKey)); ok {
				t.Fatalf("rotate %d: the old api_key still finds the account", tc.cred)
			}
		}
		if n.CFAPIKey != a.CFAPIKey {
			if _, ok := s.AccountByCFKey([]byte(a.CFAPIKey)); ok {
				t.Fatalf("rotate %d: the old cf_api_key still finds the account", tc.cred)
			}
		}
		allKeysDistinct(t, s)
		a = n
	}
	if _, err := s.RotateAccount("alice", Credential(0)); err == nil {
		t.Fatal("rotating an unknown credential succeeded")
	}
	if _, err := s.RotateAccount("nobody", CredSecret); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("rotate unknown account: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if got, _ := s.AccountByName([]byte("alice")); got != a {
		t.Fatalf("after reopen %+v, want %+v", got, a)
	}
}

// TestSetRequireSignature: "v2" and "" are the modes; durable.
func TestSetRequireSignature(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	if _, err := s.AddAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRequireSignature("alice", "v3"); err == nil {
		t.Fatal("mode v3 accepted")
	}
	if err := s.SetRequireSignature("nobody", "v2"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("unknown account: %v", err)
	}
	if err := s.SetRequireSignature("alice", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	if a, _ := s.AccountByName([]byte("alice")); a.RequireSignature != "v2" {
		t.Fatalf("after reopen %+v", a)
	}
	if err := s.SetRequireSignature("alice", ""); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.AccountByName([]byte("alice")); a.RequireSignature != "" {
		t.Fatalf("after clearing %+v", a)
	}
}

// TestOnAccountChange: called once per change, with the name, after the
// change is visible to lookups, never for a change that failed.
func TestOnAccountChange(t *testing.T) {
	opts := testOptions(t, "")
	var s *Store
	var calls []string
	opts.OnAccountChange = func(name string) {
		a, ok := s.AccountByName([]byte(name))
		calls = append(calls, fmt.Sprintf("%s:%v:%d:%d", name, ok, a.MaxListenersPerIP, a.SecretGen))
	}
	s = openTest(t, opts)
	_, _ = s.AddAccount("alice")
	_, _ = s.AddAccount("alice") // exists: no call
	_ = s.SetMaxListenersPerIP("alice", 7)
	_, _ = s.RotateAccount("alice", CredSecret)
	_ = s.SetRequireSignature("alice", "v2")
	_ = s.RemoveAccount("alice")
	_ = s.RemoveAccount("alice") // absent: no call
	want := "alice:true:30:0 alice:true:7:0 alice:true:7:1 alice:true:7:1 alice:false:0:0"
	if got := strings.Join(calls, " "); got != want {
		t.Fatalf("calls\n got %s\nwant %s", got, want)
	}
}
