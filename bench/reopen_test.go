package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// flakyFront proxies to the server at url. Connection n (in the order
// accepted, from 0) is closed at once when n < closed, is cut 200 ms
// after it opened when n < closed+cut, and is passed through otherwise.
// It returns the front's URL.
func flakyFront(t *testing.T, url string, closed, cut int) string {
	_, backend, _ := strings.Cut(url, "://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if n < closed {
				c.Close()
				continue
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, b)
			mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
			if n < closed+cut {
				time.AfterFunc(200*time.Millisecond, func() { c.Close(); b.Close() })
			}
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestIdleMixReopens: connections that fail to open (closed before the
// handshake) or are lost after it are opened again while the bench opens
// and settles, and the push reaches all of them; with --reopen 0 they are
// counted failed and closed, and the push reaches the rest.
func TestIdleMixReopens(t *testing.T) {
	run := func(t *testing.T, reopen int, settle time.Duration) idleResult {
		url := flakyFront(t, fanServer(t), 10, 5)
		gs := clusterGroups([]string{"ez"}, "u", credentials{key: "k", cfKey: "k", secret: "s3cret"})[:1] // halley/ws
		c := mixConfig{
			idleConfig: idleConfig{
				clientConfig: clientConfig{Target: url, PerIP: 20, Channels: 1, DialConc: 4, MaxLife: time.Minute, Timeout: 120, Reopen: reopen},
				PID:          os.Getpid(), Counts: []int{10, 20}, Settle: settle, OpenTimeout: 20 * time.Second, PerProcess: 20,
			},
			Groups: gs, PushWait: 10 * time.Second,
		}
		var log bytes.Buffer
		res, err := runIdleMix(context.Background(), c, &log)
		if err != nil {
			t.Fatalf("reopen %d: %v\n%s", reopen, err, log.String())
		}
		t.Logf("reopen %d: steps %+v push %+v", reopen, res.Steps, res.Push)
		return res
	}
	t.Run("reopen", func(t *testing.T) {
		t.Parallel()
		// The first 10 fail, are opened again after 1 s, and 5 of those
		// are cut and opened again after 2 s: 4 s of settling sees them.
		res := run(t, 3, 4*time.Second)
		last := res.Steps[len(res.Steps)-1]
		if last.Open != 20 || last.Failed != 0 || last.Closed != 0 || last.Reopened != 15 {
			t.Fatalf("with re-opens: %+v", last)
		}
		if p := res.Push; p.Expected != 20 || p.Delivered != 20 {
			t.Fatalf("with re-opens, push %+v", p)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		res := run(t, 0, time.Second)
		last := res.Steps[len(res.Steps)-1]
		if last.Open != 5 || last.Failed != 10 || last.Closed != 5 || last.Reopened != 0 {
			t.Fatalf("without re-opens: %+v", last)
		}
		if p := res.Push; p.Expected != 5 || p.Delivered != 5 {
			t.Fatalf("without re-opens, push %+v", p)
		}
	})
}
