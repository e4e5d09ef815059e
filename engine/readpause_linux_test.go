//go:build linux && !poll_opt

package engine

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestReadPauseGnetLayout fails when gnet's unexported layout, which
// pausing reads relies on (readpause_linux.go), is no longer the one of
// v2.10: the loop's epoll descriptor must be found, hold the connection,
// and a paused connection's interest there must be EPOLLRDHUP alone.
func TestReadPauseGnetLayout(t *testing.T) {
	if _, err := os.Stat("/proc/self/fdinfo"); err != nil {
		t.Skip("no /proc")
	}
	h := newTestHandler()
	s, addr := startServer(t, testOptions(), h)
	c, br := dial(t, addr)
	io.WriteString(c, "GET /holdlong HTTP/1.1\r\nHost: x\r\n\r\n")
	// The handler records the held connection after Hold counts it: wait
	// for the record.
	waitFor(t, "hold", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.held) == 1
	})
	h.mu.Lock()
	held := h.held[0].(*conn)
	h.mu.Unlock()
	var epfd, fd int
	onLoop(s, held, func() { epfd, fd = held.lp.pollFD, held.gc.Fd() })
	if epfd < 0 {
		t.Fatal("gnet's layout changed: the loop's epoll descriptor was not found, reads cannot be paused")
	}
	// The interest as the kernel shows it (hex, with EPOLLERR|EPOLLHUP,
	// which it always adds).
	interest := func() uint64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", epfd))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[0] == "tfd:" && f[1] == fmt.Sprint(fd) {
				v, err := strconv.ParseUint(f[3], 16, 32)
				if err != nil {
					t.Fatal(err)
				}
				return v &^ (syscall.EPOLLERR | syscall.EPOLLHUP)
			}
		}
		t.Fatalf("descriptor %d is not in epoll %d: gnet's layout changed", fd, epfd)
		return 0
	}
	if got := interest(); got != syscall.EPOLLIN|syscall.EPOLLPRI { // as gnet set it
		t.Fatalf("interest %#x before pausing", got)
	}
	go io.WriteString(c, strings.Repeat("GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 20000))
	waitFor(t, "reads paused", func() bool { return s.Stats().ReadPauses > 0 })
	if got := interest(); got != syscall.EPOLLRDHUP {
		t.Fatalf("interest %#x while paused", got)
	}
	onLoop(s, held, func() { held.Reply(200, "text/plain", nil, []byte("woken")) })
	if _, body := readResponse(t, br); body != "woken" {
		t.Fatalf("got %q", body)
	}
	for i := range 20000 {
		if _, body := readResponse(t, br); body != "GET /x <nil> " {
			t.Fatalf("answer %d: %q", i, body)
		}
	}
}
