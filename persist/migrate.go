package persist

import (
	"encoding/json"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Accounts written by 5a75858 and earlier had one key, api_key, which
// served both APIs: EZComet writes and every Cometify page and listen
// URL. It was public, so it cannot stay a write credential. Open converts
// each such account (no cf_api_key on disk): the old key becomes its
// cf_api_key, so Cometify pages and listen URLs keep working; a fresh
// private api_key replaces it for EZComet writes; the account gets an id;
// the generations start at 0. The records are rewritten durably before
// Open returns, and Migrated lists the converted accounts so that the
// opener can show each new private key once.

// migrateAccounts converts the accounts of t stored in the single-key
// format, and gives an id to any account without one, durably. It runs at
// Open, before the committer starts. It returns the table to use and the
// converted accounts, sorted by username.
func (s *Store) migrateAccounts(t *accountTable) (*accountTable, []Account, error) {
	list := slices.Clone(t.sorted)
	fresh := map[string]bool{}
	taken := func(k string) bool { return t.taken(k) || fresh[k] }
	var migrated []Account
	b := s.db.NewBatch()
	defer b.Close()
	for i := range list {
		a := &list[i]
		switch {
		case a.CFAPIKey == "":
			a.CFAPIKey = a.APIKey
			a.APIKey = newKeyAvoiding(taken)
			fresh[a.APIKey] = true
			a.CFKeyGen, a.SecretGen = 0, 0
			if a.ID == 0 {
				a.ID = newAccountID()
			}
			migrated = append(migrated, *a)
		case a.ID == 0:
			a.ID = newAccountID()
		default:
			continue
		}
		v, _ := json.Marshal(a) // plain strings and integers: never fails
		_ = b.Set(accountKey(nil, a.Username), v, nil)
	}
	if b.Empty() {
		return t, nil, nil
	}
	if err := s.guard(func() error { return s.db.Apply(b, pebble.Sync) }); err != nil {
		return nil, nil, err
	}
	return newAccountTable(list), migrated, nil
}

// Migrated returns the accounts Open converted from the single-key format
// of earlier versions (see migrateAccounts), with their new credentials:
// the opener shows each new private api_key once and tells its EZComet
// publishers to switch to it. Empty when nothing was converted, and on
// every later Open. The slice is the caller's.
func (s *Store) Migrated() []Account { return slices.Clone(s.migrated) }
