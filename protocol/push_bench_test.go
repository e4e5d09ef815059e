package protocol

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
)

// newPushBench returns a function that performs the i-th accepted push and waits for
// its answer: md5-signed (CF-P-03), or HMAC-signed (CF-P-10) with a nonce
// of its own and its md5 secure too, the costliest accepted push.
func newPushBench(tb testing.TB, hmacSigned bool, n int) func(i int) {
	now := time.Unix(1_700_000_000, 0)
	api, acct := newInlineAPI(tb, func() time.Time { return now })
	c := newFakeConn()
	c.replied = make(chan struct{}, 1)
	f := &cfFixture{fixture: &fixture{acct: acct}, clk: &clock{t: now}}
	reqs := make([]*engine.Request, n)
	for i := range reqs {
		p := f.signedPush(i)
		p.text = "hello world"
		p.withSecure(acct.CFAPIKey, acct.APISecret)
		if hmacSigned {
			p.sign(acct.CFAPIKey, acct.APISecret)
		} else {
			p.omit["ts"], p.omit["nonce"], p.omit["signature"] = true, true, true
		}
		reqs[i] = &engine.Request{
			Method: []byte("POST"), Path: []byte("/" + acct.CFAPIKey + "/push/chat"), Body: []byte(p.body()),
			Header: header{"Content-Type": "application/x-www-form-urlencoded"}, PeerAddr: netip.MustParseAddr("127.0.0.1"),
		}
	}
	return func(i int) {
		api.Serve(c, reqs[i])
		<-c.replied
	}
}

// TestPushAllocs: CF-P-10's signature adds no allocation to a push; the
// budget is what an md5 push costs end to end: the pushOp and its one
// buffer (topic, text, nonce and the rooms of its encodings, built only
// for listeners), plus the test header's Peek, which copies (the
// engine's does not). The store adds none.
func TestPushAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race; make test checks this budget without -race")
	}
	const runs = 200
	allocs := map[bool]float64{}
	for _, signed := range []bool{false, true} {
		push := newPushBench(t, signed, runs+2)
		push(runs + 1) // grow the loop's buffers once
		i := 0
		allocs[signed] = testing.AllocsPerRun(runs, func() { push(i); i++ })
	}
	t.Logf("allocations per accepted push: md5 %v, CF-P-10 %v", allocs[false], allocs[true])
	if allocs[true] > allocs[false] {
		t.Fatalf("a CF-P-10 push costs %v allocations, an md5 push %v", allocs[true], allocs[false])
	}
	if budget := 3.0; allocs[false] > budget {
		t.Fatalf("%v allocations per accepted push, budget %v", allocs[false], budget)
	}
}

// BenchmarkPushAccepted is one accepted push end to end, md5 or CF-P-10.
func BenchmarkPushAccepted(b *testing.B) {
	for _, signed := range []bool{false, true} {
		b.Run(fmt.Sprintf("hmac=%v", signed), func(b *testing.B) {
			push := newPushBench(b, signed, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				push(i)
			}
		})
	}
}
