package protocol

import (
	"fmt"
	"testing"

	"github.com/halleypush/halley/persist"
)

// TestStoreRefusals: what the client is told when the store refuses a
// write or push it had accepted for commit. An account removed (or
// removed and added again) while the write waited is a 401 "credential
// revoked" (A-04); a storage fault, a full write queue or a stalled
// commit is a 503 (C-10); conflicts stay 409. The store is told which
// account incarnation authorized each write.
func TestStoreRefusals(t *testing.T) {
	f, fs := newFaultFixture(t)
	pushBody := "identifier=chat&secret=0&text=x&secure=" + md5hex(f.acct.CFAPIKey+md5hex(f.acct.APISecret)+"chatx")
	storage := func(why string) error { return fmt.Errorf("%w: %s", persist.ErrStorage, why) }
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"revoked", fmt.Errorf("persist: commit: %w", persist.ErrRevoked), 401, "credential revoked"},
		{"disk fault", storage("sync: input/output error"), 503, "storage unavailable"},
		{"queue full", storage("write queue full"), 503, "storage unavailable"},
		{"stalled", storage("commit stalled for 5s"), 503, "storage unavailable"},
		{"closed", persist.ErrClosed, 503, "storage unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs.set(func(s *faultStore) { s.pushErr, s.writeErr = tc.err, tc.err })
			wantError(t, f.write("qname=john-chat&msg=hi"), tc.status, tc.msg)
			wantError(t, f.postPush(f.acct.CFAPIKey, "chat", pushBody), tc.status, tc.msg)
		})
	}
	t.Run("conflicts", func(t *testing.T) {
		fs.set(func(s *faultStore) { s.pushErr, s.writeErr = persist.ErrPushConflict, persist.ErrTickConflict })
		wantError(t, f.write("qname=john-chat&msg=hi&tick=t1"), 409, "tick already queued with a different msg")
		wantError(t, f.postPush(f.acct.CFAPIKey, "chat", pushBody+"&push_id=3"), 409, errPushConflict.msg)
	})
	t.Run("account id", func(t *testing.T) {
		fs.set(func(s *faultStore) { s.pushErr, s.writeErr = nil, nil })
		if r := f.write("qname=john-chat&msg=hi"); r.status != 200 {
			t.Fatalf("write: %d %s", r.status, r.body)
		}
		if r := f.postPush(f.acct.CFAPIKey, "chat", pushBody); r.status != 200 {
			t.Fatalf("push: %d %s", r.status, r.body)
		}
		fs.mu.Lock()
		w := fs.writes[len(fs.writes)-1]
		fs.mu.Unlock()
		if f.acct.ID == 0 || w.AccountID != f.acct.ID || fs.lastPush(t).AccountID != f.acct.ID {
			t.Fatalf("account id %d, write carried %d, push %d", f.acct.ID, w.AccountID, fs.lastPush(t).AccountID)
		}
	})
}

// TestHealthz is C-10: 200 while the store accepts writes, 503 "storage
// unavailable" while it does not (failed or stalled commit), 503 "shutting
// down" while draining.
func TestHealthz(t *testing.T) {
	f, fs := newFaultFixture(t)
	get := func() reply { return f.serve("GET", "/healthz", "", "", nil).lastReply(t) }
	if r := get(); r.status != 200 || r.body != `{"code":"ok"}` {
		t.Fatalf("healthy: %d %s", r.status, r.body)
	}
	fs.set(func(s *faultStore) { s.unhealthy = fmt.Errorf("%w: commit stalled", persist.ErrStorage) })
	wantError(t, get(), 503, "storage unavailable")
	fs.set(func(s *faultStore) { s.unhealthy = persist.ErrClosed })
	wantError(t, get(), 503, "storage unavailable")
	fs.set(func(s *faultStore) { s.unhealthy = nil })
	if r := get(); r.status != 200 {
		t.Fatalf("healthy again: %d %s", r.status, r.body)
	}
	wantError(t, f.serve("POST", "/healthz", "", "", nil).lastReply(t), 405, "method not allowed")
	f.api.draining.Store(true)
	wantError(t, get(), 503, "shutting down")
}

// TestFailRows is C-03 for the engine's failures: the JSON error carries
// the engine's status and message, and two failures with one status (the
// 429s of C-08 and C-12) are told apart.
func TestFailRows(t *testing.T) {
	f, _ := newFaultFixture(t)
	for _, tc := range []struct {
		status     int
		msg        string
		wantStatus int
		wantMsg    string
	}{
		{400, "malformed request", 400, "malformed request"},
		{408, "request header timeout", 408, "request header timeout"},
		{413, "request body too large", 413, "request body too large"},
		{431, "request header fields too large", 431, "request header fields too large"},
		{505, "HTTP version not supported", 505, "HTTP version not supported"},
		{429, "too many pipelined bytes while a request was pending", 429, "too many pipelined bytes while a request was pending"},
		{429, "too many connections from this IP", 429, "too many connections from this IP"},
		{400, "Transfer-Encoding must be chunked", 400, "Transfer-Encoding must be chunked"}, // not in the table yet
		{429, "", 429, "error"},
		{200, "not an error status", 500, "not an error status"},
	} {
		c := newFakeConn()
		f.loop.do(func() { f.api.Fail(c, nil, tc.status, tc.msg) })
		wantError(t, c.lastReply(t), tc.wantStatus, tc.wantMsg)
	}
	if errorForStatus(429, errTooManyConns.msg) != errTooManyConns || errorForStatus(429, errPipelineFlood.msg) != errPipelineFlood {
		t.Fatal("the 429 rows are not the table's")
	}
}

// TestStreamRefusedByFailedStore: a stream's store reads end after its
// upgrade, so a store that reports itself failed or stalled refuses a
// new stream with 503 before upgrading, and its listener slot goes back.
func TestStreamRefusedByFailedStore(t *testing.T) {
	f, fs := newFaultFixture(t)
	fs.set(func(s *faultStore) { s.unhealthy = fmt.Errorf("%w: commit stalled", persist.ErrStorage) })
	key := "/" + f.acct.CFAPIKey
	for _, p := range []struct{ path, query string }{
		{"/read/ws", "qname=john-x"}, {"/read/sse", "qname=john-x"},
		{key + "/listen", "identifiers=x"}, {key + "/sse", "identifiers=x"},
	} {
		c := f.serve("GET", p.path, p.query, "", nil)
		if r := c.lastReply(t); r.status != 503 || c.upgraded || c.streaming || c.Tag() != nil {
			t.Fatalf("%s: %d %s upgraded=%v streaming=%v", p.path, r.status, r.body, c.upgraded, c.streaming)
		}
	}
	if n := f.api.cap.held(); n != 0 {
		t.Fatalf("%d slots held", n)
	}
}
