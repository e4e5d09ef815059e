package engine

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientKeyOf(t *testing.T) {
	same := [][2]string{
		{"1.2.3.4", "::ffff:1.2.3.4"},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
	}
	for _, p := range same {
		if ClientKeyOf(netip.MustParseAddr(p[0])) != ClientKeyOf(netip.MustParseAddr(p[1])) {
			t.Errorf("%s and %s should count together", p[0], p[1])
		}
	}
	differ := [][2]string{
		{"1.2.3.4", "1.2.3.5"},
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"0.0.0.1", "::1"},
	}
	for _, p := range differ {
		if ClientKeyOf(netip.MustParseAddr(p[0])) == ClientKeyOf(netip.MustParseAddr(p[1])) {
			t.Errorf("%s and %s should count apart", p[0], p[1])
		}
	}
	// Addr names what the key counts (the X-03 stats list it).
	for in, want := range map[string]string{"1.2.3.4": "1.2.3.4", "::ffff:10.0.0.1": "10.0.0.1", "0.0.0.0": "0.0.0.0",
		"255.255.255.255": "255.255.255.255", "2001:db8:1:2::7": "2001:db8:1:2::", "::1": "::"} {
		if got := ClientKeyOf(netip.MustParseAddr(in)).Addr(); got != netip.MustParseAddr(want) {
			t.Errorf("ClientKeyOf(%s).Addr() = %s, want %s", in, got, want)
		}
	}
	// No address has the key that says "no client", not even one in
	// the /64 it names (a trusted proxy's header could carry one).
	for _, in := range []string{"ffff:ffff:ffff:ffff::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.255", "::"} {
		if ClientKeyOf(netip.MustParseAddr(in)) == NoClientKey {
			t.Errorf("ClientKeyOf(%s) = NoClientKey", in)
		}
	}
}

// dialFrom connects to addr from the loopback address local.
func dialFrom(t *testing.T, local, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// expectTooMany reads the JSON 429 of C-12 and the close after it.
func expectTooMany(t *testing.T, br *bufio.Reader) {
	t.Helper()
	resp, body := readResponse(t, br)
	if resp.StatusCode != 429 || !resp.Close || !strings.Contains(body, FailTooManyConns) || !strings.Contains(body, `"status":429`) {
		t.Fatalf("got %d close=%v %q", resp.StatusCode, resp.Close, body)
	}
	expectEOF(t, br)
}

func get(t *testing.T, c net.Conn, br *bufio.Reader, extra string) *http.Response {
	t.Helper()
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
	resp, _ := readResponse(t, br)
	return resp
}

// TestConnsPerIPCap (C-12): one connection over MaxConnsPerIP from one
// address gets a JSON 429 and is closed; a connection that closes frees
// its place; other addresses are not affected.
func TestConnsPerIPCap(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.MaxConnsPerIP = 3
	s, addr := startServer(t, opts, h)
	_, port, _ := net.SplitHostPort(addr)
	target := "127.0.0.1:" + port
	var open []net.Conn
	for range 3 {
		c, br := dialFrom(t, "127.0.0.2", target)
		if resp := get(t, c, br, ""); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		open = append(open, c)
	}
	_, br := dialFrom(t, "127.0.0.2", target)
	expectTooMany(t, br)
	c, br := dialFrom(t, "127.0.0.5", target)
	if resp := get(t, c, br, ""); resp.StatusCode != 200 {
		t.Fatalf("another address: status %d", resp.StatusCode)
	}
	open[0].Close()
	k := ClientKeyOf(netip.MustParseAddr("127.0.0.2"))
	waitFor(t, "the place freed", func() bool { return s.perIP.Count(k) == 2 })
	c, br = dialFrom(t, "127.0.0.2", target)
	if resp := get(t, c, br, ""); resp.StatusCode != 200 {
		t.Fatalf("after a close: status %d", resp.StatusCode)
	}
	if st := s.Stats(); st.RefusedPerIP != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// startProxiedServer starts a server capped at perIP connections per
// client address, behind a trusted proxy at 127.0.0.3, and returns the
// address to dial.
func startProxiedServer(t *testing.T, h *testHandler, perIP int) (*Server, string) {
	opts := testOptions()
	opts.MaxConnsPerIP = perIP
	opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
	s, addr := startServer(t, opts, h)
	_, port, _ := net.SplitHostPort(addr)
	return s, "127.0.0.1:" + port
}

// TestConnsPerIPTrustedProxy (C-07, C-12): a trusted proxy's connections
// are not counted at accept but by the client each request names; a
// client over the cap gets the 429 and that connection closes; a
// connection whose client changes moves its count; an IPv6 client counts
// per /64; an untrusted peer's X-Forwarded-For is not believed.
func TestConnsPerIPTrustedProxy(t *testing.T) {
	h := newTestHandler()
	s, target := startProxiedServer(t, h, 2)
	count := func(a string) int { return s.perIP.Count(ClientKeyOf(netip.MustParseAddr(a))) }

	var conns []net.Conn
	var brs []*bufio.Reader
	for range 5 { // more than the cap: a proxy is exempt at accept
		c, br := dialFrom(t, "127.0.0.3", target)
		conns, brs = append(conns, c), append(brs, br)
	}
	for i, xff := range []string{"1.1.1.1", "9.9.9.9, 1.1.1.1:5000"} {
		resp := get(t, conns[i], brs[i], "X-Forwarded-For: "+xff+"\r\n")
		if resp.StatusCode != 200 || resp.Header.Get("X-Client") != "1.1.1.1" {
			t.Fatalf("conn %d: %d client %q", i, resp.StatusCode, resp.Header.Get("X-Client"))
		}
	}
	io.WriteString(conns[2], "GET /x HTTP/1.1\r\nHost: x\r\nForwarded: for=1.1.1.1\r\n\r\n")
	expectTooMany(t, brs[2])
	if count("1.1.1.1") != 2 || count("127.0.0.3") != 0 {
		t.Fatalf("counts %d %d", count("1.1.1.1"), count("127.0.0.3"))
	}
	// The second connection now speaks for another client.
	if resp := get(t, conns[1], brs[1], "X-Forwarded-For: 2.2.2.2\r\n"); resp.Header.Get("X-Client") != "2.2.2.2" {
		t.Fatalf("client %q", resp.Header.Get("X-Client"))
	}
	if count("1.1.1.1") != 1 || count("2.2.2.2") != 1 {
		t.Fatalf("counts %d %d", count("1.1.1.1"), count("2.2.2.2"))
	}
	// IPv6 clients count per /64.
	for i, xff := range []string{"2001:db9:0:1::1", "[2001:db9:0:1::2]:443"} {
		if resp := get(t, conns[3+i], brs[3+i], "X-Forwarded-For: "+xff+"\r\n"); resp.StatusCode != 200 {
			t.Fatalf("v6 %d: %d", i, resp.StatusCode)
		}
	}
	io.WriteString(conns[0], "GET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 2001:db9:0:1:aaaa::3\r\n\r\n")
	expectTooMany(t, brs[0])
	// An untrusted peer names no one.
	c, br := dialFrom(t, "127.0.0.4", target)
	if resp := get(t, c, br, "X-Forwarded-For: 3.3.3.3\r\n"); resp.Header.Get("X-Client") != "127.0.0.4" {
		t.Fatalf("untrusted peer: client %q", resp.Header.Get("X-Client"))
	}
	for _, c := range conns {
		c.Close()
	}
	c.Close()
	waitFor(t, "every count released", func() bool { return s.perIP.Total() == 0 })
}

// TestConnsPerIPNoLeak (C-12): under churn (requests, resets, refusals
// over the cap, a proxy's changing clients, held polls, WebSockets,
// half-sent requests) and a graceful stop with connections still open,
// every count goes back to zero.
func TestConnsPerIPNoLeak(t *testing.T) {
	h := newTestHandler()
	s, target := startProxiedServer(t, h, 4)
	dialer := func(local string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", target)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		}
		return c, err
	}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				local := fmt.Sprintf("127.0.0.%d", 10+(w+round)%3)
				if round%5 == 3 {
					local = "127.0.0.3"
				}
				c, err := dialer(local)
				if err != nil {
					t.Error(err)
					return
				}
				br := bufio.NewReader(c)
				switch round % 5 {
				case 0: // a request, then close
					io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
					br.ReadString('\n')
				case 1: // reset in the middle of a request
					io.WriteString(c, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
					_ = c.(*net.TCPConn).SetLinger(0)
				case 2: // a held poll, left
					io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
				case 3: // a proxy whose client changes, some over the cap
					for i := range 3 {
						fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 8.8.8.%d\r\n\r\n", (w+i)%2)
						if resp, err := http.ReadResponse(br, nil); err == nil {
							io.Copy(io.Discard, resp.Body)
						}
					}
				case 4: // a WebSocket, reset
					io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
						"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
					br.ReadString('\n')
					_ = c.(*net.TCPConn).SetLinger(0)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all connections closed", func() bool { return s.Stats().OpenConns == 0 })
	if n := s.perIP.Total(); n != 0 {
		t.Fatalf("%d counts left after churn", n)
	}
	// A graceful stop with connections open (idle, held, proxied).
	for i, local := range []string{"127.0.0.20", "127.0.0.21", "127.0.0.3"} {
		c, br := dialFrom(t, local, target)
		switch i {
		case 0:
			get(t, c, br, "")
		case 1:
			io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")
		case 2:
			get(t, c, br, "X-Forwarded-For: 7.7.7.7\r\n")
		}
	}
	waitFor(t, "hold", func() bool { return s.Stats().HeldPolls == 1 })
	if n := s.perIP.Total(); n != 3 {
		t.Fatalf("%d counts for 3 connections", n)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := s.perIP.Total(); n != 0 {
		t.Fatalf("%d counts left after the stop", n)
	}
}
