package protocol

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// dialSmallBuffer connects with a 4 KiB receive buffer, set before the
// handshake so the TCP window stays small: the server's output backs up
// in its own buffers, as it does for a reader on a slow link.
func (rs *realServer) dialSmallBuffer() net.Conn {
	rs.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, raw syscall.RawConn) error {
		var serr error
		err := raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", rs.addr)
	if err != nil {
		rs.t.Fatal(err)
	}
	return c
}

// readFrames reads n text frames (their payloads) from br, failing on a
// close frame, EOF, or 10 s without a frame.
func readFrames(t *testing.T, c net.Conn, br *bufio.Reader, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		h, err := ws.ReadHeader(br)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		switch h.OpCode {
		case ws.OpText:
			out = append(out, string(payload))
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			t.Fatalf("closed %d %q after %d frames", code, reason, len(out))
		}
	}
	return out
}

// TestBacklogOverLoopback: a WebSocket reader whose backlog is far more
// than the server's MaxOutbound (1 MiB here), on a socket with a 4 KiB
// receive buffer, reads all of it (C-08): an EZComet catch-up of 3000
// messages of 4 KB (three read batches), and a Cometify replay of 300
// pushes of 16 KB. Before backlogs were sent as the socket drains, both
// readers were cut as slow consumers once the kernel's buffers (up to
// 4 MiB on loopback) were full.
func TestBacklogOverLoopback(t *testing.T) {
	const backlog = 3000
	rs := startRealServer(t, persist.Options{SweepInterval: -1, Sync: persist.SyncNone, EZMaxQueue: backlog}, engine.Options{
		MaxOutbound: 1 << 20, SweepInterval: 5 * time.Millisecond, Loops: 1,
	})
	acct, err := rs.store.AddAccount("big")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("m", 4000)
	done := make(chan error, backlog)
	for i := range backlog {
		rs.store.EZWrite(persist.EZWrite{QName: "big-room", Tick: []byte(fmt.Sprintf("t%04d", i)), Body: []byte(body)},
			func(r persist.EZWriteResult) { done <- r.Err })
	}
	text := strings.Repeat("p", 16000)
	pushed := make(chan error, 300)
	for range 300 {
		rs.store.CFPushTo(persist.CFPush{Topic: "big/chat", Text: []byte(text)}, cfDone(func(r persist.CFPushResult) { pushed <- r.Err }))
	}
	for range backlog {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for range 300 {
		if err := <-pushed; err != nil {
			t.Fatal(err)
		}
	}

	open := func(pathQuery string) (net.Conn, *bufio.Reader) {
		c := rs.dialSmallBuffer()
		d := ws.Dialer{NetDial: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		_, br, _, err := d.Dial(context.Background(), "ws://"+rs.addr+pathQuery)
		if err != nil {
			t.Fatal(err)
		}
		if br == nil {
			br = bufio.NewReader(c)
		}
		return c, br
	}

	t.Run("ezcomet", func(t *testing.T) {
		c, br := open("/read/ws?qname=big-room")
		defer c.Close()
		for i, fr := range readFrames(t, c, br, backlog) {
			var pair [2]string
			if err := json.Unmarshal([]byte(fr), &pair); err != nil || pair[0] != fmt.Sprintf("t%04d", i) || pair[1] != body {
				t.Fatalf("frame %d: %.40q", i, fr)
			}
		}
		rs.write("big-room", "live", "after")
		if fr := readFrames(t, c, br, 1); fr[0] != `["live","after"]` {
			t.Fatalf("live frame %q", fr[0])
		}
	})
	t.Run("cometify", func(t *testing.T) {
		c, br := open("/" + acct.CFAPIKey + "/listen?identifiers=chat:0")
		defer c.Close()
		frs := readFrames(t, c, br, 301)
		if frs[0] != `{"since":"chat:0"}` {
			t.Fatalf("first frame %q", frs[0])
		}
		for i, fr := range frs[1:] {
			var p struct {
				ID   int
				Data string
			}
			if err := json.Unmarshal([]byte(fr), &p); err != nil || p.ID != i+1 || p.Data != text {
				t.Fatalf("push %d: %.60q", i, fr)
			}
		}
	})
}
