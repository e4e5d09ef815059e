package persist

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// userKeys lists the keys on disk that hold data of username (a channel
// "<username>-...", a topic "<username>/...", whatever the key kind, or
// a nonce), and its account record. Expiry index entries, which the
// sweeper deletes once expired, are not data.
func userKeys(t *testing.T, s *Store, username string) []string {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for it.First(); it.Valid(); it.Next() {
		k := string(it.Key())
		if k[0] == kindSecretExpiry || k[0] == kindNonceExpiry {
			continue
		}
		if strings.Contains(k, "\x00"+username+"-") || strings.Contains(k, "\x00"+username+"/") ||
			strings.HasPrefix(k, string(nonceKey(nil, username, ""))) || k == string(accountKey(nil, username)) {
			out = append(out, k)
		}
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fillUser gives username two channels and two topics.
func fillUser(t *testing.T, s *Store, username string) {
	t.Helper()
	for _, q := range []string{"-ch", "-other"} {
		for _, tick := range []string{"t1", "t2", "t3"} {
			mustAppend(t, s, username+q, tick, "body "+tick)
		}
	}
	for _, topic := range []string{"/a", "/b"} {
		mustPush(t, s, cfAuto(username+topic, "one"))
		mustPush(t, s, noncePush(username+topic, 0, "n"+topic[1:], "two"))
	}
	mustPush(t, s, securePush(username+"/s", 0, true, "D1", "secret"))
}

// TestRemoveAccountDeletesData: rm deletes every key of the
// account's channels and topics and forgets them in memory, touches no
// other account (not even one whose name starts the same), and the name
// added again starts empty: ids from 1, no old message readable, no old
// tick known, across a reopen too.
func TestRemoveAccountDeletesData(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	for _, name := range []string{"bob", "bob_x", "alice"} {
		if _, err := s.AddAccount(name); err != nil {
			t.Fatal(err)
		}
		fillUser(t, s, name)
	}
	before := map[string]int{"bob_x": len(userKeys(t, s, "bob_x")), "alice": len(userKeys(t, s, "alice"))}
	if len(userKeys(t, s, "bob")) == 0 || before["bob_x"] == 0 {
		t.Fatal("no data written")
	}

	if err := s.RemoveAccount("bob"); err != nil {
		t.Fatal(err)
	}
	if keys := userKeys(t, s, "bob"); len(keys) != 0 {
		t.Fatalf("after rm, bob's keys remain: %q", keys)
	}
	for name, n := range before {
		if got := len(userKeys(t, s, name)); got != n {
			t.Fatalf("rm bob changed %s's keys: %d, was %d", name, got, n)
		}
	}
	if s.EZLastSeq("bob-ch") != 0 || s.CFLast([]byte("bob/a")) != 0 || len(s.EZChannels("bob")) != 0 {
		t.Fatal("bob's channels or topics still in memory")
	}
	if s.EZLastSeq("bob_x-ch") != 3 || s.CFLast([]byte("bob_x/a")) != 2 {
		t.Fatal("bob_x's channels or topics lost from memory")
	}

	if _, err := s.AddAccount("bob"); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if got := ticks(mustRead(t, s, "bob-ch", []byte("t2"), 0)); got != "t1|cursor=1" {
			t.Errorf("%s: read from an old tick %s, want only the new message and no gap", when, got)
		}
		if got := ticks(mustRead(t, s, "bob-other", nil, 0)); got != "|cursor=0" {
			t.Errorf("%s: old channel %s", when, got)
		}
		if got := cfIDs(mustCFRead(t, s, "bob/a", 0, 0, 0)); got != "1|cursor=1 last=1" {
			t.Errorf("%s: topic %s", when, got)
		}
		if got := cfIDs(mustCFRead(t, s, "bob/b", 0, 0, 0)); got != "|cursor=0 last=0" {
			t.Errorf("%s: old topic %s", when, got)
		}
		if chans := s.EZChannels("bob"); len(chans) != 1 || chans[0].QName != "bob-ch" || chans[0].LastSeq != 1 {
			t.Errorf("%s: channels %+v", when, chans)
		}
		if s.CFLast([]byte("bob/c")) != 1 || s.CFLast([]byte("bob/s")) != 1 {
			t.Errorf("%s: the pushes reusing the old nonce and digest are lost", when)
		}
	}
	// The same tick as an old message: new, not a duplicate.
	if r := write(t, s, msg("bob-ch", "t1", "new")); r.Err != nil || r.Duplicate || r.Msg.Seq != 1 {
		t.Fatalf("first write after re-add: %+v", r)
	}
	if got := describeCF(push(t, s, cfAuto("bob/a", "new"))); got != "id 1" {
		t.Fatalf("first push after re-add: %s", got)
	}
	// The old account's nonce and secret records went with it.
	if got := describeCF(push(t, s, noncePush("bob/c", 0, "na", "old nonce"))); got != "id 1" {
		t.Fatalf("the removed account's nonce: %s", got)
	}
	if got := describeCF(push(t, s, securePush("bob/s", 0, false, "D1", "old digest"))); got != "id 1" {
		t.Fatalf("the removed account's secret digest: %s", got)
	}
	check("re-added")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	check("reopened")
}

// TestRemoveOrderedAfterQueuedWrites: rm runs after the writes
// queued before it (which it then deletes) and before those queued after
// it; a write or push authorized for the removed incarnation and built
// after the removal gets ErrRevoked, one carrying no account id does not,
// and the channel it writes starts from seq 1.
func TestRemoveOrderedAfterQueuedWrites(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	bob, err := s.AddAccount("bob")
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "bob-ch", "t0", "zero")
	authorized := func(w EZWrite) EZWrite { w.AccountID = bob.ID; return w }
	pushAs := func(p CFPush) CFPush { p.AccountID = bob.ID; return p }

	release := holdCommitter(t, s)
	ez := make([]chan EZWriteResult, 3)
	cf := make([]chan CFPushResult, 2)
	for i := range ez {
		ez[i] = make(chan EZWriteResult, 1)
	}
	for i := range cf {
		cf[i] = make(chan CFPushResult, 1)
	}
	s.EZWrite(authorized(msg("bob-ch", "t1", "before")), func(r EZWriteResult) { ez[0] <- r })
	s.CFPushTo(pushAs(cfAuto("bob/a", "before")), cfDoneFunc(func(r CFPushResult) { cf[0] <- r }))
	removed := make(chan error, 1)
	go func() { removed <- s.RemoveAccount("bob") }()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.writes) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the removal was never queued")
		}
		time.Sleep(time.Millisecond)
	}
	s.EZWrite(authorized(msg("bob-ch", "t2", "after")), func(r EZWriteResult) { ez[1] <- r })
	s.CFPushTo(pushAs(cfAuto("bob/a", "after")), cfDoneFunc(func(r CFPushResult) { cf[1] <- r }))
	s.EZWrite(msg("bob-ch", "t3", "unchecked"), func(r EZWriteResult) { ez[2] <- r })
	release()

	if r := await(t, ez[0], "write before rm"); r.Err != nil || r.Msg.Seq != 2 {
		t.Fatalf("write queued before rm: %+v", r)
	}
	if r := await(t, cf[0], "push before rm"); r.Err != nil {
		t.Fatalf("push queued before rm: %+v", r)
	}
	if err := await(t, removed, "rm"); err != nil {
		t.Fatal(err)
	}
	if r := await(t, ez[1], "write after rm"); !errors.Is(r.Err, ErrRevoked) {
		t.Fatalf("write authorized for the removed account: %+v, want ErrRevoked", r)
	}
	if r := await(t, cf[1], "push after rm"); !errors.Is(r.Err, ErrRevoked) {
		t.Fatalf("push authorized for the removed account: %+v, want ErrRevoked", r)
	}
	if r := await(t, ez[2], "unchecked write"); r.Err != nil || r.Msg.Seq != 1 {
		t.Fatalf("unchecked write after rm: %+v, want seq 1 of a fresh channel", r)
	}
	if got := ticks(mustRead(t, s, "bob-ch", nil, 0)); got != "t3|cursor=1" {
		t.Fatalf("bob-ch after rm: %s", got)
	}
	if s.CFLast([]byte("bob/a")) != 0 {
		t.Fatal("a revoked push reached the topic")
	}

	// Another incarnation of the name does not accept the old one's id.
	again, err := s.AddAccount("bob")
	if err != nil {
		t.Fatal(err)
	}
	if r := write(t, s, authorized(msg("bob-ch", "t4", "stale"))); !errors.Is(r.Err, ErrRevoked) {
		t.Fatalf("write with the old incarnation's id: %+v", r)
	}
	if r := push(t, s, pushAs(cfAuto("bob/a", "stale"))); !errors.Is(r.Err, ErrRevoked) {
		t.Fatalf("push with the old incarnation's id: %s", describeCF(r))
	}
	w := msg("bob-ch", "t5", "current")
	w.AccountID = again.ID
	if r := write(t, s, w); r.Err != nil {
		t.Fatalf("write of the current incarnation: %+v", r)
	}
	p := cfAuto("bob/a", "current")
	p.AccountID = again.ID
	if got := describeCF(push(t, s, p)); got != "id 1" {
		t.Fatalf("push of the current incarnation: %s", got)
	}
	if got := s.Stats().Revoked; got != 4 {
		t.Fatalf("Revoked = %d, want 4", got)
	}
}

// TestAccountChangeRefusedWhenUnhealthy: an account change, like a write,
// is refused at once on a stalled disk.
func TestAccountChangeRefusedWhenUnhealthy(t *testing.T) {
	opts, st, clock := stallOptions(t)
	s := openTest(t, opts)
	t.Cleanup(st.unblock)
	st.armed.Store(true)
	w := make(chan EZWriteResult, 1)
	s.EZWrite(msg("u-ch", "t1", "one"), func(r EZWriteResult) { w <- r })
	await(t, st.entered, "the WAL sync")
	clock.advance(opts.StallTimeout + time.Millisecond)
	if _, err := s.AddAccount("alice"); !errors.Is(err, ErrStorage) {
		t.Fatalf("AddAccount during a stall: %v", err)
	}
	st.unblock()
	if r := await(t, w, "the stalled write"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if _, err := s.AddAccount("alice"); err != nil {
		t.Fatalf("AddAccount after the stall: %v", err)
	}
}
