//go:build linux

package bench

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestSubscriberKeepAlive: a subscriber's socket probes as Chromium's do
// (45 s idle, every 45 s), not every 15 s as Go's dialer default.
func TestSubscriberKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := clientConfig{Target: "http://" + ln.Addr().String(), Kind: "halley", Mode: "longpoll", QName: "u-c", PerIP: 20, Channels: 1, Timeout: 120}
	conn, _, err := openSub(context.Background(), &c, ln.Addr().String(), "h", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on, idle, intvl int
	var gerr error
	raw.Control(func(fd uintptr) {
		if on, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); gerr != nil {
			return
		}
		if idle, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE); gerr != nil {
			return
		}
		intvl, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL)
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	if want := int(45 * time.Second / time.Second); on != 1 || idle != want || intvl != want {
		t.Fatalf("keep-alive on %d idle %d s interval %d s, want on, %d s, %d s", on, idle, intvl, want, want)
	}
}
