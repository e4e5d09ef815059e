package protocol

import "testing"

// postPush sends a push form to /{key}/push/{ident} and waits for its
// answer.
func (f *cfFixture) postPush(key, ident, body string) reply {
	f.t.Helper()
	c := f.serve("POST", "/"+key+"/push/"+ident, "", body, header{"Content-Type": "application/x-www-form-urlencoded"})
	f.await("push answer", func() bool { return c.numReplies() > 0 })
	return c.lastReply(f.t)
}

// wantError checks that r is C-03's JSON error with status and msg.
func wantError(t *testing.T, r reply, status int, msg string) {
	t.Helper()
	if r.status != status || r.ctype != ctJSON {
		t.Fatalf("status %d (%s), want %d: %s", r.status, r.ctype, status, r.body)
	}
	v := decode(t, r.body)
	if v["code"] != "error" || v["status"] != float64(status) || v["msg"] != msg {
		t.Fatalf("error body %s, want status %d msg %q", r.body, status, msg)
	}
}
