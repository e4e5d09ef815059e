package protocol

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// TestCFSlotsNeverLeak runs the API on the real engine and ends Cometify
// listeners every way a connection can end: a clean close, a reset, a
// poll's timeout, a poll answered by a push, a slow consumer cut by the
// server, a burst over the cap, and finally the server's drain. After each
// phase every per-IP slot must be free again (CF-L-08: "the slot is freed
// the moment the connection goes, whatever way it goes").
func TestCFSlotsNeverLeak(t *testing.T) {
	rs := startRealServer(t, persist.Options{SweepInterval: -1}, engine.Options{
		MaxOutbound: 64 << 10, SweepInterval: 20 * time.Millisecond, DrainTimeout: 2 * time.Second,
	})
	acct, err := rs.store.AddAccount("churn")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + rs.addr + "/" + acct.CFAPIKey
	waitFree := rs.waitSlots
	openWS := func(src, query string) (net.Conn, int) {
		t.Helper()
		c, _, st := rs.openWS(src, "/"+acct.CFAPIKey+"/listen?"+query)
		return c, st
	}
	openHTTP := func(src, path string) net.Conn {
		t.Helper()
		return rs.openHTTP(src, "/"+acct.CFAPIKey+"/"+path)
	}
	push := func(text string) {
		t.Helper()
		sig := md5hex(acct.CFAPIKey + md5hex(acct.APISecret) + "chat" + text)
		resp, err := http.PostForm(base+"/push/chat", url.Values{"identifier": {"chat"}, "secret": {"0"}, "text": {text}, "secure": {sig}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("push: %d", resp.StatusCode)
		}
	}

	for round := range 3 {
		src := fmt.Sprintf("127.0.4.%d", round+1)
		// Clean closes and resets, on every transport.
		var conns []net.Conn
		for i := range 10 {
			c, st := openWS(src, "identifiers=chat")
			if st != 101 {
				t.Fatalf("round %d ws %d: %d", round, i, st)
			}
			conns = append(conns, c)
			conns = append(conns, openHTTP(src, "sse?identifiers=chat"))
			conns = append(conns, openHTTP(src, "poll?identifiers=chat&timeout=60"))
		}
		waitFree("open", 30)
		// The 31st is refused before any upgrade, on each transport.
		if _, st := openWS(src, "identifiers=chat"); st != 429 {
			t.Fatalf("31st ws: %d", st)
		}
		if st := statusOf(t, openHTTP(src, "sse?identifiers=chat")); st != 429 {
			t.Fatalf("31st sse: %d", st)
		}
		for i, c := range conns {
			if i%2 == 0 {
				c.(*net.TCPConn).SetLinger(0) // reset
			}
			c.Close()
		}
		waitFree("closed and reset", 0)
	}

	// Polls that end by timeout and by a push.
	var polls []net.Conn
	for range 5 {
		polls = append(polls, openHTTP("127.0.5.1", "poll?identifiers=chat&timeout=1"))
		polls = append(polls, openHTTP("127.0.5.2", "poll?identifiers=chat&timeout=60"))
	}
	waitFree("polls waiting", 10)
	push("wake")
	for _, c := range polls {
		if st := statusOf(t, c); st != 200 {
			t.Fatalf("poll: %d", st)
		}
	}
	waitFree("polls answered", 0)

	// A slow consumer: never reads while big pushes pile up; the server
	// cuts it at MaxOutbound.
	slow, _ := openWS("127.0.6.1", "identifiers=chat")
	slow.(*net.TCPConn).SetReadBuffer(4 << 10)
	waitFree("slow open", 1)
	big := strings.Repeat("x", 60<<10)
	for i := 0; i < 200 && rs.api.cap.held() > 0; i++ {
		push(fmt.Sprintf("%d%s", i, big))
	}
	waitFree("slow consumer cut", 0)
	slow.Close()

	// A burst of 300 from one IP: 30 get in, the rest get 429 at once.
	var burst []net.Conn
	refused := 0
	for range 300 {
		c := openHTTP("127.0.7.1", "sse?identifiers=chat")
		burst = append(burst, c)
	}
	for _, c := range burst {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.Contains(line, " 429 ") {
			refused++
		}
	}
	if refused != 270 {
		t.Fatalf("burst: %d refused, want 270", refused)
	}
	waitFree("burst", 30)

	// Drain: the server ends every listener itself.
	for range 5 {
		c, _ := openWS("127.0.8.1", "identifiers=chat")
		burst = append(burst, c)
		burst = append(burst, openHTTP("127.0.8.1", "poll?identifiers=chat&timeout=60"))
	}
	waitFree("before drain", 40)
	rs.stop()
	waitFree("drained", 0)
	for _, c := range burst {
		c.Close()
	}
}
