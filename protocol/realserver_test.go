package protocol

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// realServer is the API on the real engine over loopback, for what only
// sockets show: slots freed however a connection ends, backlogs paced by
// a real socket.
type realServer struct {
	t     testing.TB
	api   *API
	srv   *engine.Server
	store *persist.Store
	addr  string
	errc  chan error
}

func startRealServer(t testing.TB, so persist.Options, eo engine.Options) *realServer {
	t.Helper()
	return startRealServerOver(t, so, eo, nil)
}

// startRealServerOver is startRealServer with the API over wrap(store)
// (nil: the store itself).
func startRealServerOver(t testing.TB, so persist.Options, eo engine.Options, wrap func(*persist.Store) Store) *realServer {
	t.Helper()
	so.Dir = t.TempDir()
	hook := &batchHook{}
	if so.AfterBatch == nil { // a test's own hook leaves the API unhooked
		so.AfterBatch = hook.run
	}
	store, err := persist.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var as Store = store
	if wrap != nil {
		as = wrap(store)
	}
	api, err := New(Options{Store: as, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	eo.Listen = []string{"127.0.0.1:0"}
	if eo.Loops == 0 {
		eo.Loops = 2
	}
	srv, err := engine.New(eo, api, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	api.Attach(srv)
	hook.api.Store(api)
	rs := &realServer{t: t, api: api, srv: srv, store: store, errc: make(chan error, 1)}
	go func() { rs.errc <- srv.Run() }()
	<-srv.Ready()
	rs.addr = srv.Addrs()[0].String()
	t.Cleanup(rs.stop)
	return rs
}

// stop drains the server and waits for Run to return; idempotent.
func (rs *realServer) stop() {
	if rs.errc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rs.srv.Shutdown(ctx); err != nil {
		rs.t.Error(err)
	}
	<-rs.errc
	rs.errc = nil
	rs.api.Close()
}

// waitSlots polls until want listener slots are held, or fails after 5 s.
func (rs *realServer) waitSlots(phase string, want int) {
	rs.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for rs.api.cap.held() != want {
		if time.Now().After(deadline) {
			rs.t.Fatalf("%s: %d slots held, want %d", phase, rs.api.cap.held(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (rs *realServer) dialFrom(src string) net.Conn {
	rs.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", rs.addr)
	if err != nil {
		rs.t.Fatal(err)
	}
	return c
}

// openWS upgrades path?query from src; it returns the conn and 101, or
// nil and the refusal's status.
func (rs *realServer) openWS(src, pathQuery string) (net.Conn, *bufio.Reader, int) {
	rs.t.Helper()
	c := rs.dialFrom(src)
	d := ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
	_, br, _, err := d.Dial(context.Background(), "ws://"+rs.addr+pathQuery)
	if err != nil {
		c.Close()
		if se, ok := err.(ws.StatusError); ok {
			return nil, nil, int(se)
		}
		rs.t.Fatal(err)
	}
	if br == nil {
		br = bufio.NewReader(c)
	}
	return c, br, 101
}

// openHTTP sends a GET from src and returns the conn without waiting.
func (rs *realServer) openHTTP(src, pathQuery string) net.Conn {
	rs.t.Helper()
	c := rs.dialFrom(src)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", pathQuery)
	return c
}

func statusOf(t testing.TB, c net.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// write stores one EZComet message through the store (no HTTP) and lets
// the API fan it out, as /write would.
func (rs *realServer) write(qname, tick, body string) {
	rs.t.Helper()
	c, err := net.Dial("tcp", rs.addr)
	if err != nil {
		rs.t.Fatal(err)
	}
	defer c.Close()
	acct, _ := rs.store.AccountByName([]byte(qname[:indexByte([]byte(qname), '-')]))
	q := fmt.Sprintf("api_key=%s&qname=%s&tick=%s&msg=%s", acct.APIKey, qname, tick, body)
	fmt.Fprintf(c, "POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(q), q)
	if st := statusOf(rs.t, c); st != 200 {
		rs.t.Fatalf("write: %d", st)
	}
}
