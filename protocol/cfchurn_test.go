package protocol

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

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
	store, err := persist.Open(persist.Options{Dir: t.TempDir(), SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	acct, err := store.AddAccount("churn")
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Options{Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	eopts := engine.Options{
		Listen: []string{"127.0.0.1:0"}, Loops: 2,
		MaxOutbound: 64 << 10, SweepInterval: 20 * time.Millisecond, DrainTimeout: 2 * time.Second,
	}
	srv, err := engine.New(eopts, api, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Run() }()
	<-srv.Ready()
	addr := srv.Addrs()[0].String()
	base := "http://" + addr + "/" + acct.CFAPIKey

	waitFree := func(phase string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for api.cap.held() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d slots held, want %d", phase, api.cap.held(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	dialFrom := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// openWS upgrades a listener from src and reads its first frame.
	openWS := func(src, query string) (net.Conn, int) {
		t.Helper()
		c := dialFrom(src)
		d := ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		_, br, _, err := d.Dial(context.Background(), "ws://"+addr+"/"+acct.CFAPIKey+"/listen?"+query)
		if err != nil {
			c.Close()
			if se, ok := err.(ws.StatusError); ok {
				return nil, int(se)
			}
			t.Fatal(err)
		}
		if br != nil {
			ws.PutReader(br)
		}
		return c, 101
	}
	// openHTTP sends a GET listener request from src and returns the conn
	// once the server has had time to register it.
	openHTTP := func(src, path string) net.Conn {
		t.Helper()
		c := dialFrom(src)
		fmt.Fprintf(c, "GET /%s/%s HTTP/1.1\r\nHost: x\r\n\r\n", acct.CFAPIKey, path)
		return c
	}
	statusOf := func(c net.Conn) int {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
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
		if st := statusOf(openHTTP(src, "sse?identifiers=chat")); st != 429 {
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
		if st := statusOf(c); st != 200 {
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
	for i := 0; i < 200 && api.cap.held() > 0; i++ {
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-errc
	waitFree("drained", 0)
	for _, c := range burst {
		c.Close()
	}
}
