//go:build linux

package bench

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// epollSubs holds the fan-out subscribers of one client process without a
// goroutine each: after the handshake (made with the ordinary blocking
// code) a subscriber's socket is handed to one of a few reader goroutines,
// each owning an epoll instance, which read it with read(2) into one
// buffer per reader and parse the frames by hand (wsStream). Per
// subscriber there remain the socket, an epConn and the accounting.
type epollSubs struct {
	readers  []*epReader
	conns    []atomic.Pointer[epConn] // by subscriber index; nil: not held
	f        *fanState
	st       *clientStats
	coalesce time.Duration // after a wake-up with few sockets ready, sleep this long (0: never)
}

// epConn is one subscriber held by an epoll reader.
type epConn struct {
	fd  int
	idx int // subscriber index (fanState.subs)
	ws  wsStream
}

// epReader is one reader goroutine's epoll instance. Work that must not
// race its reads (dropping its sockets) is sent on reqs, with a byte on
// the wake pipe, and done by the reader itself.
type epReader struct {
	e    *epollSubs
	epfd int
	k    int    // its index: it holds the subscribers i with i mod len(readers) == k
	wake [2]int // pipe: read end in the epoll set
	reqs chan func()
}

const epWake = -1 // the epoll data of a reader's wake pipe

const epollAvailable = true

// newEpollSubs starts n reader goroutines for up to subs subscribers.
func newEpollSubs(n, subs int, coalesce time.Duration, f *fanState, st *clientStats) (*epollSubs, error) {
	e := &epollSubs{conns: make([]atomic.Pointer[epConn], subs), f: f, st: st, coalesce: coalesce}
	for range n {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			for _, r := range e.readers {
				syscall.Close(r.epfd)
			}
			return nil, err
		}
		r := &epReader{e: e, epfd: fd, k: len(e.readers), reqs: make(chan func(), 4)}
		e.readers = append(e.readers, r)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: epWake}
		if err := syscall.Pipe2(r.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
			return nil, err
		}
		if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, r.wake[0], &ev); err != nil {
			return nil, err
		}
	}
	for _, r := range e.readers {
		go r.run()
	}
	return e, nil
}

// add takes over subscriber i's open connection: its socket (duplicated,
// then conn is closed) goes to a reader, and what br had read past the
// handshake is parsed first. On error the connection is closed.
func (e *epollSubs) add(i int, conn net.Conn, br *bufio.Reader) error {
	fd, err := dupConnFD(conn)
	var pending []byte
	if err == nil && br.Buffered() > 0 {
		p, _ := br.Peek(br.Buffered())
		pending = append([]byte(nil), p...)
	}
	conn.Close()
	if err != nil {
		return err
	}
	c := &epConn{fd: fd, idx: i}
	if len(pending) > 0 {
		sink := epSink{e: e, c: c, now: time.Now().UnixNano()}
		err := c.ws.feed(pending, &sink)
		e.st.msgs.Add(sink.n)
		if err != nil {
			syscall.Close(fd)
			return err
		}
	}
	e.conns[i].Store(c)
	r := e.readers[i%len(e.readers)]
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
	if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		e.conns[i].Store(nil)
		syscall.Close(fd)
		return err
	}
	return nil
}

// dupConnFD duplicates conn's socket (non-blocking, close-on-exec), so
// that conn can be closed and the socket read without the Go netpoller.
func dupConnFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, syscall.EINVAL
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) {
		if nfd, derr = syscall.Dup(int(fd)); derr == nil {
			syscall.CloseOnExec(nfd)
			derr = syscall.SetNonblock(nfd, true)
		}
	}); err != nil {
		return -1, err
	}
	if derr != nil && nfd >= 0 {
		syscall.Close(nfd)
	}
	return nfd, derr
}

// run is the reader loop: level-triggered, one read per ready socket per
// wake-up (a socket with more pending is reported again).
func (r *epReader) run() {
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	sink := &epSink{e: r.e}
	for {
		n, err := syscall.EpollWait(r.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			return
		}
		sink.n = 0
		for _, ev := range events[:n] {
			if ev.Fd == epWake {
				r.control(buf)
				continue
			}
			c := r.e.conns[ev.Fd].Load()
			if c == nil {
				continue
			}
			m, err := syscall.Read(c.fd, buf)
			if m > 0 {
				sink.c, sink.now = c, time.Now().UnixNano()
				if c.ws.feed(buf[:m], sink) != nil {
					r.drop(c)
				}
				continue
			}
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			r.drop(c) // end of stream or a socket error
		}
		if sink.n > 0 {
			r.e.st.msgs.Add(sink.n)
		}
		if r.e.coalesce > 0 && n < len(events)/8 {
			// Few sockets were ready: let more become ready before the
			// next wait, rather than paying a wake-up per delivery while
			// the server writes its fan-out.
			time.Sleep(r.e.coalesce)
		}
	}
}

// control runs the requests sent to the reader.
func (r *epReader) control(buf []byte) {
	syscall.Read(r.wake[0], buf)
	for {
		select {
		case f := <-r.reqs:
			f()
		default:
			return
		}
	}
}

// do runs f on reader r's goroutine and waits for it.
func (r *epReader) do(f func()) {
	done := make(chan struct{})
	r.reqs <- func() { f(); close(done) }
	syscall.Write(r.wake[1], []byte{1})
	<-done
}

// reset drops every held subscriber at once with a TCP reset (SO_LINGER
// 0), as a crash or a network cut would, and returns their indexes. They
// count as dropped, not closed.
func (e *epollSubs) reset() []int {
	var all []int
	for _, r := range e.readers {
		r.do(func() {
			for i := r.k; i < len(e.conns); i += len(e.readers) {
				c := e.conns[i].Load()
				if c == nil {
					continue
				}
				syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
				syscall.SetsockoptLinger(c.fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
				syscall.Close(c.fd)
				e.conns[i].Store(nil)
				all = append(all, i)
			}
		})
	}
	e.st.open.Add(-int64(len(all)))
	return all
}

// drop closes a subscriber that ended (or broke the protocol).
func (r *epReader) drop(c *epConn) {
	syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	syscall.Close(c.fd)
	r.e.conns[c.idx].Store(nil)
	r.e.st.open.Add(-1)
	r.e.st.closed.Add(1)
}

// epSink accounts the frames of one read of connection c.
type epSink struct {
	e   *epollSubs
	c   *epConn
	now int64 // when the read returned
	n   int64 // deliveries counted (flushed to st.msgs by the caller)
}

func (s *epSink) wsFrame(op byte, p []byte) error {
	switch op {
	case 0x9: // ping: pong (a lost pong on a full socket buffer is harmless here)
		syscall.Write(s.c.fd, wsFrame(0xA, p))
	case 0x8: // close: echo the status, then end
		if len(p) > 2 {
			p = p[:2]
		}
		syscall.Write(s.c.fd, wsFrame(0x8, p))
		return io.EOF
	case 0xA:
	default:
		s.n += s.e.f.onFrameAt(s.c.idx, p, s.now)
	}
	return nil
}
