//go:build linux

package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// epollSubs holds the connections of one client process without a
// goroutine each: after the handshake (made with the ordinary blocking
// code: the WebSocket upgrade, or the first long-poll request sent) a
// connection's socket is handed to one of a few reader goroutines, each
// owning an epoll instance, which read it with read(2) into one buffer per
// reader and parse it by hand: WebSocket frames (wsStream), or long-poll
// answers (respStream), the next poll then being sent from the reader.
// Per connection there remain the socket, an epConn and the accounting.
// The fan-out clients and the idle clients hold their connections so.
type epollSubs struct {
	readers  []*epReader
	conns    []atomic.Pointer[epConn] // by socket fd; nil: not held
	st       *clientStats
	coalesce time.Duration
	onData   func(c *epConn, p []byte, now int64) int64
	poll     *lpPoll
	onLost   func(idx int) bool
}

// epReader is one reader goroutine's epoll instance: it holds the sockets
// fd with fd mod len(readers) == k. Work that must not race its reads
// (dropping its sockets) is sent on reqs, with a byte on the wake pipe,
// and done by the reader itself.
type epReader struct {
	e    *epollSubs
	epfd int
	k    int
	wake [2]int // pipe: read end in the epoll set
	reqs chan func()
}

const epWake = -1 // the epoll data of a reader's wake pipe

const epollAvailable = true

// maxEpollFDs bounds the fd table (the open-file limit is 20,000 here).
const maxEpollFDs = 1 << 20

// newEpollSubs starts o.Readers reader goroutines.
func newEpollSubs(o epollOptions, st *clientStats) (*epollSubs, error) {
	if o.Readers < 1 || (o.OnData == nil) == (o.Poll == nil) {
		return nil, fmt.Errorf("epoll readers: %d readers, a WebSocket or a long-poll reader needed", o.Readers)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil, err
	}
	e := &epollSubs{conns: make([]atomic.Pointer[epConn], min(lim.Cur, maxEpollFDs)), st: st,
		coalesce: o.Coalesce, onData: o.OnData, poll: o.Poll, onLost: o.OnLost}
	for range o.Readers {
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

// add takes over connection idx's open connection: its socket (duplicated,
// then conn is closed) goes to a reader, and what br had read past the
// handshake is parsed first. On error the connection is closed.
func (e *epollSubs) add(idx int, conn net.Conn, br *bufio.Reader) error {
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
	if fd >= len(e.conns) {
		syscall.Close(fd)
		return fmt.Errorf("epoll readers: fd %d beyond the open-file limit %d", fd, len(e.conns))
	}
	c := &epConn{fd: fd, idx: idx}
	if e.poll != nil {
		c.lp = new(lpConn)
	}
	if len(pending) > 0 {
		sink := epSink{e: e, c: c, now: time.Now().UnixNano()}
		err := sink.feed(pending)
		e.st.msgs.Add(sink.n)
		if err != nil {
			syscall.Close(fd)
			return err
		}
	}
	e.conns[fd].Store(c)
	r := e.readers[fd%len(e.readers)]
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		e.conns[fd].Store(nil)
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
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			sink.c, sink.now = c, time.Now().UnixNano()
			switch {
			case m > 0:
				if err := sink.feed(buf[:m]); err != nil {
					r.drop(c, err)
				}
			case m == 0 && c.lp != nil: // the end of a body that ends with the connection
				r.drop(c, c.lp.resp.feed(nil, true, &sink.resp, sink))
			case m == 0:
				r.drop(c, io.EOF)
			default:
				r.drop(c, err) // a socket error
			}
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

// reset drops every held connection at once with a TCP reset (SO_LINGER
// 0), as a crash or a network cut would, and returns their numbers (idx).
// They count as dropped, not closed.
func (e *epollSubs) reset() []int {
	var all []int
	for _, r := range e.readers {
		r.do(func() {
			for fd := r.k; fd < len(e.conns); fd += len(e.readers) {
				c := e.conns[fd].Load()
				if c == nil {
					continue
				}
				syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
				syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
				e.conns[fd].Store(nil) // before the close: the fd number may be taken again at once
				syscall.Close(fd)
				all = append(all, c.idx)
			}
		})
	}
	e.st.open.Add(-int64(len(all)))
	return all
}

// drop closes a connection that ended (or broke the protocol); err is why.
func (r *epReader) drop(c *epConn, err error) {
	syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	r.e.conns[c.fd].Store(nil) // before the close: the fd number may be taken again at once
	syscall.Close(c.fd)
	r.e.st.lose(err)
	r.e.st.open.Add(-1)
	if r.e.onLost == nil || !r.e.onLost(c.idx) {
		r.e.st.closed.Add(1)
	}
}

// epSink parses the bytes of one read of connection c and accounts what
// they held. A reader has one, reused for every read.
type epSink struct {
	e    *epollSubs
	c    *epConn
	now  int64    // when the read returned (UnixNano)
	n    int64    // deliveries counted (flushed to st.msgs by the caller)
	resp response // long-poll: the answer being parsed
	req  []byte   // long-poll: the next request being written
}

// feed parses b, read from s.c.
func (s *epSink) feed(b []byte) error {
	if s.c.lp != nil {
		return s.c.lp.resp.feed(b, false, &s.resp, s)
	}
	return s.c.ws.feed(b, s)
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
		s.n += s.e.onData(s.c, p, s.now)
	}
	return nil
}

// response takes a long-poll's answer and sends the next poll.
func (s *epSink) response(r *response) error {
	p, lp := s.e.poll, s.c.lp
	n, err := lp.answered(r, p.c.kind(), s.e.st, s.now/1000)
	s.n += n
	if err != nil {
		return err
	}
	s.req = lp.request(s.req[:0], p.c, p.host, s.c.idx)
	// The socket had nothing in flight: a full buffer (EAGAIN) is an error.
	if err := writeAll(s.c.fd, s.req); err != nil {
		return fmt.Errorf("long-poll: write: %w", err)
	}
	return nil
}
