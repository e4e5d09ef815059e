package protocol

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/halleypush/halley/engine"
)

// TestUpgradeRefusals: a WebSocket upgrade the engine refuses is answered
// before anything is kept (C-13): another Sec-WebSocket-Version gets 426
// saying which one the server speaks, a malformed handshake 400, both
// JSON, and the listener slot taken for it is free again.
func TestUpgradeRefusals(t *testing.T) {
	f := newCFFixture(t, Options{})
	for _, path := range []string{"/read/ws", "/" + f.acct.CFAPIKey + "/listen"} {
		for _, tc := range []struct {
			err    error
			status int
		}{
			{engine.ErrUpgradeVersion, 426},
			{engine.ErrBadUpgrade, 400},
		} {
			c := newFakeConn()
			c.upgradeErr = tc.err
			r := &engine.Request{Method: []byte("GET"), Path: []byte(path), Query: []byte("qname=john-c&identifiers=chat"),
				Header: header{}, PeerAddr: netip.MustParseAddr("10.5.0.1"), ClientIP: netip.MustParseAddr("10.5.0.1")}
			f.loop.do(func() { f.api.Serve(c, r) })
			f.settle()
			got := c.lastReply(t)
			v := decode(t, got.body)
			if got.status != tc.status || v["status"] != float64(tc.status) || got.ctype != ctJSON {
				t.Fatalf("%s %v: %d %s %s", path, tc.err, got.status, got.ctype, got.body)
			}
			if hasVersion := strings.Contains(got.hdrs, "Sec-WebSocket-Version: 13\r\n"); hasVersion != (tc.status == 426) {
				t.Fatalf("%s %d: headers %q", path, tc.status, got.hdrs)
			}
			if !strings.Contains(got.hdrs, "Access-Control-Allow-Origin: *") {
				t.Fatalf("%s %d: no CORS: %q", path, tc.status, got.hdrs)
			}
			var held int
			f.loop.do(func() { held = f.api.cap.held() })
			if held != 0 || c.Tag() != nil {
				t.Fatalf("%s %d: %d slots held, tag %v", path, tc.status, held, c.Tag())
			}
		}
	}
}
