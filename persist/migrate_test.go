package persist

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// oldAccountRecords are accounts as 5a75858 stored them: one api_key for
// both APIs, no cf_api_key, no id (see `git show 5a75858:persist/accounts.go`).
var oldAccountRecords = map[string]string{
	"alice": `{"username":"alice","api_key":"0123456789abcdef0123456789abcdef","api_secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","max_listeners_per_ip":30}`,
	"bob":   `{"username":"bob","api_key":"fedcba9876543210fedcba9876543210","api_secret":"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB","max_listeners_per_ip":5}`,
}

// writeOldAccounts stores oldAccountRecords in dir through Pebble itself,
// as the old code did.
func writeOldAccounts(t *testing.T, dir string) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{logf: t.Logf}})
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range oldAccountRecords {
		if err := db.Set(accountKey(nil, name), []byte(rec), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateSingleKeyAccounts: Open converts every account of the old
// format, durably and once: its old (public) key becomes its cf_api_key,
// a fresh private api_key replaces it, it gets an id; Migrated lists
// exactly those accounts; their data and the accounts of the new format
// are untouched.
func TestMigrateSingleKeyAccounts(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	carol, err := s.AddAccount("carol")
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "alice-ch", "t1", "kept")
	mustPush(t, s, cfAuto("alice/a", "kept"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeOldAccounts(t, opts.Dir)

	s = openTest(t, opts)
	got := s.Migrated()
	if len(got) != 2 || got[0].Username != "alice" || got[1].Username != "bob" {
		t.Fatalf("Migrated = %+v, want alice and bob", got)
	}
	oldKeys := map[string]string{"alice": "0123456789abcdef0123456789abcdef", "bob": "fedcba9876543210fedcba9876543210"}
	for _, a := range got {
		old := oldKeys[a.Username]
		if a.CFAPIKey != old || a.APIKey == old || !keyRE.MatchString(a.APIKey) || a.ID == 0 || a.CFKeyGen != 0 || a.SecretGen != 0 {
			t.Fatalf("migrated %+v (old key %s)", a, old)
		}
		if cur, _ := s.AccountByName([]byte(a.Username)); cur != a {
			t.Fatalf("Migrated says %+v, the store %+v", a, cur)
		}
		if b, ok := s.AccountByCFKey([]byte(old)); !ok || b != a {
			t.Fatalf("%s: the old key is not its cf_api_key", a.Username)
		}
		if _, ok := s.AccountByAPIKey([]byte(old)); ok {
			t.Fatalf("%s: the old, public key still writes", a.Username)
		}
		if b, ok := s.AccountByAPIKey([]byte(a.APIKey)); !ok || b != a {
			t.Fatalf("%s: the new private key does not find the account", a.Username)
		}
	}
	if got[0].APISecret != "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" || got[1].MaxListenersPerIP != 5 {
		t.Fatalf("secret or limit changed: %+v", got)
	}
	if c, _ := s.AccountByName([]byte("carol")); c != carol {
		t.Fatalf("an account of the new format changed: %+v, was %+v", c, carol)
	}
	allKeysDistinct(t, s)
	if got := ticks(mustRead(t, s, "alice-ch", nil, 0)); got != "t1|cursor=1" {
		t.Fatalf("alice's channel after migration: %s", got)
	}
	if s.CFLast([]byte("alice/a")) != 1 {
		t.Fatal("alice's topic after migration")
	}
	accounts := s.Accounts()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, opts)
	if m := s.Migrated(); len(m) != 0 {
		t.Fatalf("migrated again on the next Open: %+v", m)
	}
	for i, a := range s.Accounts() {
		if a != accounts[i] {
			t.Fatalf("after reopen %+v, was %+v: the migration was not durable", a, accounts[i])
		}
	}
}
