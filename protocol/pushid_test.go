package protocol

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestPushIDRange is CF-P-02/CF-P-04: push_id is a decimal integer
// 1..2^63-1, anything else a 400 before the signature is looked at; the
// highest id is accepted and printed exactly.
func TestPushIDRange(t *testing.T) {
	f := newCFFixture(t, Options{})
	for _, bad := range []string{
		"0", "00", "9223372036854775808", "18446744073709551615", "18446744073709551616",
		"-1", "+1", " 1", "1 ", "1.0", "0x1", "1e3", "", "１",
	} {
		body := "identifier=chat&secret=0&text=x&secure=" + md5hex("wrong") + "&push_id=" + url.QueryEscape(bad)
		wantError(t, f.postPush(f.acct.CFAPIKey, "chat", body), 400, "push_id must be a decimal integer 1..2^63-1")
	}
	if r := f.push("chat", "top", false, "&push_id=9223372036854775807"); r.body != `{"code":"ok","push_id":9223372036854775807}` {
		t.Fatalf("push_id 2^63-1: %d %s", r.status, r.body)
	}
	if r := f.push("news", "one", false, "&push_id=0000000000000000001"); r.body != `{"code":"ok","push_id":1}` {
		t.Fatalf("push_id with leading zeros: %d %s", r.status, r.body)
	}
}

// TestAppendUint: ids are printed unsigned, so none can come out negative
// or garbled (CF-P-04), whatever the store hands back.
func TestAppendUint(t *testing.T) {
	for _, n := range []uint64{0, 1, 9, 10, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		if got, want := string(appendUint(nil, n)), fmt.Sprint(n); got != want {
			t.Errorf("appendUint(%d) = %q", n, got)
		}
	}
	f, fs := newFaultFixture(t)
	fs.set(func(s *faultStore) { s.pushID = 1<<63 + 5 }) // a store bug, not a valid id
	text := "x"
	body := "identifier=chat&secret=0&text=" + url.QueryEscape(text) + "&secure=" + md5hex(f.acct.CFAPIKey+md5hex(f.acct.APISecret)+"chat"+text)
	ws := f.listen("listen", "identifiers=chat", "10.8.0.1", nil)
	if r := f.postPush(f.acct.CFAPIKey, "chat", body); r.body != `{"code":"ok","push_id":9223372036854775813}` {
		t.Fatalf("ack %s", r.body)
	}
	f.loop.sync()
	want := `{"since":"chat:0"}|{"identifier":"chat","id":9223372036854775813,"data":"x"}`
	if got := strings.Join(frames(t, ws), "|"); got != want {
		t.Fatalf("listener got %s, want %s", got, want)
	}
}
