package persist

import (
	"crypto/md5"
	"fmt"
	"strings"
	"testing"
	"time"
)

// securePush is a push carrying the md5 secure digest of label.
func securePush(topic string, id uint64, secret bool, label, text string) CFPush {
	p := CFPush{Topic: topic, ID: id, HasID: id != 0, Secret: secret, Text: []byte(text), HasSecure: true}
	p.Secure = md5.Sum([]byte(label))
	return p
}

// noncePush is a push with a CF-P-10 nonce.
func noncePush(topic string, id uint64, nonce, text string) CFPush {
	return CFPush{Topic: topic, ID: id, HasID: id != 0, Text: []byte(text), Nonce: nonce}
}

// pushSteps pushes each step after advancing the clock and checks its
// outcome.
type pushStep struct {
	advance time.Duration
	p       CFPush
	want    string
}

func runPushSteps(t *testing.T, s *Store, clock *fakeClock, when string, steps []pushStep) {
	t.Helper()
	for i, step := range steps {
		clock.Advance(step.advance)
		if got := describeCF(push(t, s, step.p)); got != step.want {
			t.Fatalf("%s step %d: push %s id %d secret %v nonce %q = %s, want %s",
				when, i, step.p.Topic, step.p.ID, step.p.Secret, step.p.Nonce, got, step.want)
		}
	}
}

// TestSecretReplay (CF-P-09): the md5 secure of an accepted secret push
// is refused with secret=0 on that topic, before any id rule, for as long
// as the push is retained, across a reopen; then it is accepted again and
// the sweeper forgets the record.
func TestSecretReplay(t *testing.T) {
	opts, clock := clockedOptions(t)
	s := openTest(t, opts)
	runPushSteps(t, s, clock, "open", []pushStep{
		{0, securePush("u/a", 0, true, "D1", "secret text"), "id 1"},
		{0, securePush("u/a", 0, false, "D1", "secret text"), "secret replay"},
		{0, securePush("u/a", 1, false, "D1", "secret text"), "secret replay"}, // 403 before the duplicate
		{0, securePush("u/a", 1, false, "D1", "other"), "secret replay"},       // and before the conflict
		{0, securePush("u/a", 1, true, "D1", "secret text"), "dup 1"},          // the secret push itself re-sent
		{0, securePush("u/b", 0, false, "D1", "secret text"), "id 1"},          // another topic
		{0, securePush("u/a", 0, false, "D2", "public"), "id 2"},               // another digest
		{0, cfAuto("u/a", "signed, no md5"), "id 3"},
		{0, securePush("u/a", 0, true, "D3", "x"), "id 4"},
	})
	if s.CFLast([]byte("u/a")) != 4 {
		t.Fatal("a refused push moved last")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	runPushSteps(t, s, clock, "reopened", []pushStep{
		{DefaultCFRetain - time.Second, securePush("u/a", 0, false, "D1", "secret text"), "secret replay"}, // push 1 still retained
		{time.Second, securePush("u/a", 0, false, "D1", "secret text"), "secret replay"},                   // exactly CFRetain old: still retained
		{1, securePush("u/a", 0, false, "D1", "secret text"), "id 5"},                                      // no longer
		{0, securePush("u/a", 0, false, "D3", "x"), "id 6"},                                                // nor push 4
	})
	if got := cfIDs(mustCFRead(t, s, "u/a", 0, 0, 0)); got != "5,6|cursor=6 last=6 gap" {
		t.Fatalf("read after expiry %s", got)
	}
	s.sweep()
	if n, m := countKeys(t, s, kindSecret), countKeys(t, s, kindSecretExpiry); n != 0 || m != 0 {
		t.Fatalf("after the sweep %d secret records and %d index entries remain", n, m)
	}
	if got := s.Stats().CFSecretReplays; got != 2 {
		t.Fatalf("CFSecretReplays = %d since reopen, want 2", got)
	}
}

// TestSecretReplayInOneBatch: the record of a secret push refuses the
// replay queued behind it in the same batch; a secret=0 push before it
// is not a replay, and a refused push records nothing.
func TestSecretReplayInOneBatch(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	got := batchMixed(t, s,
		securePush("u/a", 0, false, "D1", "first public"),
		securePush("u/a", 0, true, "D1", "secret"),
		securePush("u/a", 0, false, "D1", "replay"),
		securePush("u/new", 0, true, "D2", "secret on a new topic"),
		securePush("u/new", 5, false, "D2", "replay"),
	)
	want := "id 1,id 2,secret replay,id 1,secret replay"
	if strings.Join(got, ",") != want {
		t.Fatalf("batch\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	if got := describeCF(push(t, s, securePush("u/new", 0, false, "D2", "later"))); got != "secret replay" {
		t.Fatalf("after the batch: %s", got)
	}
}

// TestNonceReuse (CF-P-10): a nonce used by an accepted push of an
// account is refused on any of its topics, before any id rule, for
// NonceMemory, durably; another account may use it; a refused push does
// not record its nonce; the sweeper forgets expired nonces but not one a
// later push renewed.
func TestNonceReuse(t *testing.T) {
	opts, clock := clockedOptions(t)
	s := openTest(t, opts)
	v, err := s.AddAccount("v")
	if err != nil {
		t.Fatal(err)
	}
	revokedPush := noncePush("v/a", 0, "n3", "revoked")
	revokedPush.AccountID = v.ID + 1
	replay := securePush("u/s", 0, false, "D1", "replay")
	replay.Nonce = "n4"
	runPushSteps(t, s, clock, "open", []pushStep{
		{0, noncePush("u/a", 0, "n1", "one"), "id 1"},
		{0, noncePush("u/b", 0, "n1", "same account"), "nonce reused"},
		{0, noncePush("u/a", 1, "n1", "one"), "nonce reused"}, // 403 before the duplicate
		{0, noncePush("u/a", 1, "n1", "x"), "nonce reused"},   // and before the conflict
		{0, noncePush("v/a", 0, "n1", "other account"), "id 1"},
		{0, noncePush("u/a", 1, "n2", "conflict"), "conflict"}, // refused: n2 not recorded
		{0, noncePush("u/a", 0, "n2", "two"), "id 2"},
		{0, revokedPush, "revoked"},
		{0, noncePush("v/a", 0, "n3", "three"), "id 2"},
		{0, securePush("u/s", 0, true, "D1", "secret"), "id 1"},
		{0, replay, "secret replay"},
		{0, noncePush("u/a", 0, "n4", "four"), "id 3"},
		{0, noncePush("u/a", 1, "n5", "one"), "dup 1"}, // a duplicate answered ok records its nonce
		{0, noncePush("u/a", 0, "n5", "five"), "nonce reused"},
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, opts)
	runPushSteps(t, s, clock, "reopened", []pushStep{
		{NonceMemory - 1, noncePush("u/c", 0, "n1", "late"), "nonce reused"},
		{1, noncePush("u/c", 0, "n1", "NonceMemory later"), "id 1"}, // renews n1
		{0, noncePush("u/c", 0, "n1", "again"), "nonce reused"},
	})
	before := countKeys(t, s, kindNonce)
	s.sweep()
	// Every nonce but the renewed n1 was recorded NonceMemory ago.
	if n, m := countKeys(t, s, kindNonce), countKeys(t, s, kindNonceExpiry); n != 1 || m != 1 {
		t.Fatalf("after the sweep %d nonce records (of %d) and %d index entries, want 1 and 1", n, before, m)
	}
	if got := describeCF(push(t, s, noncePush("u/c", 0, "n1", "after sweep"))); got != "nonce reused" {
		t.Fatalf("renewed nonce after the sweep: %s", got)
	}
	if got := describeCF(push(t, s, noncePush("u/c", 0, "n2", "expired"))); got != "id 2" {
		t.Fatalf("expired nonce after the sweep: %s", got)
	}
	if got := s.Stats().CFNoncesReused; got != 3 {
		t.Fatalf("CFNoncesReused = %d since reopen, want 3", got)
	}
}

// TestNonceReuseInOneBatch: two pushes of one account with one nonce in
// one batch: the second is refused.
func TestNonceReuseInOneBatch(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	got := batchMixed(t, s,
		noncePush("u/a", 0, "n1", "one"),
		noncePush("u/b", 0, "n1", "two"),
		noncePush("w/a", 0, "n1", "other account"),
		noncePush("u/a", 0, "n2", "three"),
	)
	if want := "id 1,nonce reused,id 1,id 2"; strings.Join(got, ",") != want {
		t.Fatalf("batch\n got %s\nwant %s", strings.Join(got, ","), want)
	}
}

// TestGuardedWriteAllocs: the checks of issue 15 cost no allocation on
// the common path: a write or push authorized by an account id, a push
// with an md5 secure on a topic that had no secret push; nor does a push
// with a nonce (its Get allocates inside Pebble only while the memtable
// holds range deletions, as count retention and rm leave).
func TestGuardedWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race")
	}
	opts := testOptions(t, "")
	opts.Sync = SyncNone // the allocation count, not the disk, is measured
	s := openTest(t, opts)
	a, err := s.AddAccount("u")
	if err != nil {
		t.Fatal(err)
	}
	mustPush(t, s, cfAuto("u/a", "warm"))
	mustAppend(t, s, "u-ch", "warm", "warm")

	ezDone := make(chan EZWriteResult, 1)
	var ezComp WriteCompletion = completionFunc(func(r EZWriteResult) { ezDone <- r })
	w := EZWrite{QName: "u-ch", Tick: []byte("3f1c9a52-6a0e-4d1b-9a43-0d6f1c2b7e11"), Body: []byte("body"), NewTick: true, AccountID: a.ID}
	if n := testing.AllocsPerRun(500, func() {
		s.EZWriteTo(w, ezComp)
		if r := <-ezDone; r.Err != nil {
			t.Fatal(r.Err)
		}
	}); n > 0 {
		t.Errorf("EZ write with an account id: %v allocs, budget 0", n)
	}

	p := securePush("u/a", 0, false, "D", "a push of some length")
	p.AccountID = a.ID
	if n := cfPushAllocs(t, s, func() CFPush { return p }); n > 0 {
		t.Errorf("CF push with an account id and an md5 secure: %v allocs, budget 0", n)
	}
	nonces := make([]string, 600)
	for i := range nonces {
		nonces[i] = fmt.Sprint("nonce-", i)
	}
	i := 0
	if n := cfPushAllocs(t, s, func() CFPush { p.Nonce = nonces[i]; i++; return p }); n > 0 {
		t.Errorf("CF push with a nonce: %v allocs, budget 0", n)
	}
}
