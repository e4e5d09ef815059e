package protocol

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// TestEZSlotsNeverLeak runs the API on the real engine and ends EZComet
// readers (and, for revocation, a Cometify listener) every way a connection can end: a clean close, a reset, a
// poll's timeout, a poll answered by a write, a slow consumer cut by the
// server, a burst over the cap, revocation and finally the server's
// drain. After each phase every per-IP slot must be free again (C-12,
// CF-L-08: "freed the moment the connection goes, whatever way it goes").
func TestEZSlotsNeverLeak(t *testing.T) {
	rs := startRealServer(t, persist.Options{SweepInterval: -1, Sync: persist.SyncNone}, engine.Options{
		MaxOutbound: 64 << 10, SweepInterval: 20 * time.Millisecond, DrainTimeout: 2 * time.Second,
	})
	if _, err := rs.store.AddAccount("churn"); err != nil {
		t.Fatal(err)
	}
	cf, _ := rs.store.AccountByName([]byte("churn"))
	const q = "qname=churn-room"

	for round := range 2 {
		src := fmt.Sprintf("127.0.4.%d", round+1)
		// Clean closes and resets, on every transport; a Cometify
		// listener shares the bucket.
		var conns []net.Conn
		for i := range 10 {
			c, _, st := rs.openWS(src, "/read/ws?"+q)
			if st != 101 {
				t.Fatalf("round %d ws %d: %d", round, i, st)
			}
			conns = append(conns, c)
			conns = append(conns, rs.openHTTP(src, "/read/sse?"+q))
			if i < 9 {
				conns = append(conns, rs.openHTTP(src, "/read?timeout=60&"+q))
			}
		}
		conns = append(conns, rs.openHTTP(src, "/"+cf.CFAPIKey+"/sse?identifiers=chat"))
		rs.waitSlots("open", 30)
		// The 31st is refused before any upgrade, on each transport.
		if _, _, st := rs.openWS(src, "/read/ws?"+q); st != 429 {
			t.Fatalf("31st ws: %d", st)
		}
		for _, p := range []string{"/read/sse?" + q, "/read?timeout=60&" + q, "/" + cf.CFAPIKey + "/sse?identifiers=chat"} {
			if st := statusOf(t, rs.openHTTP(src, p)); st != 429 {
				t.Fatalf("31st %s: %d", p, st)
			}
		}
		for i, c := range conns {
			if i%2 == 0 {
				c.(*net.TCPConn).SetLinger(0) // reset
			}
			c.Close()
		}
		rs.waitSlots("closed and reset", 0)
	}

	// Polls that end by timeout and by a write.
	var polls []net.Conn
	for range 5 {
		polls = append(polls, rs.openHTTP("127.0.5.1", "/read?timeout=1&"+q))
		polls = append(polls, rs.openHTTP("127.0.5.2", "/read?timeout=60&"+q))
	}
	rs.waitSlots("polls waiting", 10)
	rs.write("churn-room", "wake", "hi")
	for _, c := range polls {
		if st := statusOf(t, c); st != 200 {
			t.Fatalf("poll: %d", st)
		}
		c.Close()
	}
	rs.waitSlots("polls answered", 0)

	// A slow consumer: never reads while big messages pile up; the server
	// cuts it at MaxOutbound.
	slow, _, _ := rs.openWS("127.0.6.1", "/read/ws?"+q)
	slow.(*net.TCPConn).SetReadBuffer(4 << 10)
	rs.waitSlots("slow open", 1)
	big := strings.Repeat("x", 4000)
	for i := 0; i < 4000 && rs.api.cap.held() > 0; i++ {
		rs.write("churn-room", fmt.Sprint("big", i), big)
	}
	rs.waitSlots("slow consumer cut", 0)
	slow.Close()

	// Revocation: removing the account closes its readers and frees
	// their slots.
	const q2 = "qname=churn-quiet" // no backlog: polls wait
	var revoked []net.Conn
	var readers []*bufio.Reader
	for range 3 {
		c, br, _ := rs.openWS("127.0.7.1", "/read/ws?"+q2)
		revoked = append(revoked, c)
		readers = append(readers, br)
		revoked = append(revoked, rs.openHTTP("127.0.7.1", "/read/sse?"+q2))
		revoked = append(revoked, rs.openHTTP("127.0.7.1", "/read?timeout=60&"+q2))
	}
	cfc, cfbr, st := rs.openWS("127.0.7.1", "/"+cf.CFAPIKey+"/listen?identifiers=chat")
	if st != 101 {
		t.Fatalf("listener: %d", st)
	}
	defer cfc.Close()
	rs.waitSlots("before rm", 10)
	if err := rs.store.RemoveAccount("churn"); err != nil {
		t.Fatal(err)
	}
	rs.api.AccountChanged("churn")
	rs.waitSlots("removed", 0)
	// The WebSocket reader sees close 1008 "revoked" after the backlog.
	_ = revoked[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	code, reason := readUntilClose(t, readers[0])
	if code != 1008 || reason != "revoked" {
		t.Fatalf("close %d %q, want 1008 revoked", code, reason)
	}
	_ = cfc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if code, reason := readUntilClose(t, cfbr); code != 1008 || reason != "revoked" {
		t.Fatalf("listener: close %d %q, want 1008 revoked", code, reason)
	}
	if st := statusOf(t, revoked[2]); st != 404 {
		t.Fatalf("revoked poll: %d", st)
	}
	for _, c := range revoked {
		c.Close()
	}

	// Drain: the server ends every reader itself.
	if _, err := rs.store.AddAccount("churn"); err != nil {
		t.Fatal(err)
	}
	var last []net.Conn
	for range 5 {
		c, _, _ := rs.openWS("127.0.8.1", "/read/ws?"+q2)
		last = append(last, c, rs.openHTTP("127.0.8.1", "/read?timeout=60&"+q2), rs.openHTTP("127.0.8.1", "/read/sse?"+q2))
	}
	rs.waitSlots("before drain", 15)
	rs.stop()
	rs.waitSlots("drained", 0)
	for _, c := range last {
		c.Close()
	}
}

// readUntilClose reads server frames until a close frame and returns its
// code and reason.
func readUntilClose(t *testing.T, br *bufio.Reader) (uint16, string) {
	t.Helper()
	for range 100000 {
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(payload)
			return uint16(code), reason
		}
	}
	t.Fatal("no close frame")
	return 0, ""
}
