//go:build linux

package bench

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// socketConn is one end of a socket pair as a net.Conn.
func socketConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "pair")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEpollReader(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := socketConn(t, fds[0]), socketConn(t, fds[1])
	defer srv.Close()
	f := &fanState{kind: cfKind{}, msgs: 4, subs: []*fanSub{newFanSub(4), newFanSub(4)}}
	var st clientStats
	e, err := newEpollSubs(epollOptions{Readers: 1, OnData: func(c *epConn, p []byte, now int64) int64 {
		return f.onFrameAt(c.idx, p, now)
	}}, &st)
	if err != nil {
		t.Fatal(err)
	}
	push := func(seq int, id int64) []byte {
		p := fanPayload(seq, time.Now().UnixNano(), 20)
		return srvFrame(true, 1, []byte(`{"identifier":"a0","id":`+strconv.FormatInt(id, 10)+`,"data":"`+string(p)+`"}`), nil)
	}
	// What the handshake's reader took past the 101 is parsed first: the
	// resume point and half of the first push.
	first := append(srvFrame(true, 1, []byte(`{"since":"a0:0"}`), nil), push(0, 1)...)
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(first[:len(first)-5]), cli))
	br.Peek(len(first) - 5)
	st.open.Add(1)
	f.opened(1)
	if err := e.add(1, cli, br); err != nil {
		t.Fatal(err)
	}
	srv.Write(first[len(first)-5:])
	srv.Write(append(append(push(1, 2), srvFrame(true, 9, []byte("hi"), nil)...), push(1, 2)...)) // a duplicate
	pong := make([]byte, 8)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(srv, pong); err != nil || !bytes.Equal(pong, []byte{0x8A, 0x82, 0, 0, 0, 0, 'h', 'i'}) {
		t.Fatalf("pong %x %v", pong, err)
	}
	srv.Write(append(push(3, 4), srvFrame(true, 1, []byte("garbage"), nil)...))
	srv.Write(srvFrame(true, 8, []byte{3, 232}, nil))
	echo := make([]byte, 8)
	if _, err := io.ReadFull(srv, echo); err != nil || !bytes.Equal(echo, []byte{0x88, 0x82, 0, 0, 0, 0, 3, 232}) {
		t.Fatalf("close echo %x %v", echo, err)
	}
	for deadline := time.Now().Add(10 * time.Second); st.closed.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not closed")
		}
	}
	s := f.subs[1]
	if s.got != 3 || s.dup != 1 || s.order != 0 || s.missing(4) != 1 || f.bad.Load() != 1 || st.msgs.Load() != 5 || st.open.Load() != 0 {
		t.Fatalf("got %d dup %d order %d missing %d bad %d msgs %d open %d", s.got, s.dup, s.order, s.missing(4), f.bad.Load(), st.msgs.Load(), st.open.Load())
	}
	if n := e.held(); n != 0 {
		t.Fatalf("%d connections still held", n)
	}
}

// held counts the connections e holds.
func (e *epollSubs) held() int {
	n := 0
	for i := range e.conns {
		if e.conns[i].Load() != nil {
			n++
		}
	}
	return n
}
