package persist

import (
	"errors"
	"regexp"
	"testing"
)

func TestAccounts(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	keyRE := regexp.MustCompile(`^[0-9a-f]{32}$`)
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
