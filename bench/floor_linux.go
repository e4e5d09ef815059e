//go:build linux

package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// runFloor opens c.Socks loopback connections, and for each batch size
// has one locked OS thread write the frame to every accepted socket, one
// write(2) per socket per round, while a reader drains the other ends. A
// round starts when the previous one was read in full, so that every
// write meets an empty socket, as a server's fan-out does at a modest
// rate. The writer thread's getrusage gives its CPU.
func runFloor(ctx context.Context, c floorConfig, log io.Writer) ([]floorResult, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && uint64(2*c.Socks+64) > rl.Cur {
		return nil, fmt.Errorf("%d sockets need %d fds, the limit is %d: ask fewer --socks", c.Socks, 2*c.Socks+64, rl.Cur)
	}
	w, r, err := floorSockets(c.Socks)
	defer func() {
		for _, fd := range append(w, r...) {
			syscall.Close(fd)
		}
	}()
	if err != nil {
		return nil, err
	}
	var read atomic.Int64
	stop := make(chan struct{})
	rdone := make(chan error, 1)
	go func() { rdone <- floorRead(r, &read, stop) }()
	defer func() {
		close(stop)
		<-rdone
	}()
	var out []floorResult
	var expect int64
	for _, k := range c.Batches {
		frame := floorFrame(c.Size, k)
		type result struct {
			r   floorResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			// One OS thread, its own CPU time: nothing else runs on it.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			u0, s0, err := threadCPU()
			if err != nil {
				done <- result{err: err}
				return
			}
			t0 := time.Now()
			for round := 0; round < c.Rounds/k; round++ {
				for _, fd := range w {
					if err := writeAll(fd, frame); err != nil {
						done <- result{err: err}
						return
					}
				}
				expect += int64(len(frame) * len(w))
				for read.Load() < expect {
					if ctx.Err() != nil || time.Since(t0) > time.Minute {
						done <- result{err: fmt.Errorf("the reader got %d of %d bytes", read.Load(), expect)}
						return
					}
					time.Sleep(20 * time.Microsecond)
				}
			}
			wall := time.Since(t0)
			u1, s1, err := threadCPU()
			done <- result{floorStats(k, len(w), int64(c.Rounds)*int64(len(w)), u1-u0, s1-s0, wall), err}
		}()
		res := <-done
		if res.err != nil {
			return out, res.err
		}
		fmt.Fprintf(log, "floor: %d per write: %.2f µs CPU per frame, %.0f frames/s\n", k, res.r.CPUus, res.r.DeliveriesSec)
		out = append(out, res.r)
	}
	return out, nil
}

// threadCPU is the calling thread's user and system time.
func threadCPU() (user, sys time.Duration, err error) {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0, 0, err
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), nil
}

// writeAll writes b to a socket (a non-blocking one's full buffer is an
// error, EAGAIN).
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// floorSockets opens n loopback connections and returns the accepted
// ends (blocking, for the writer) and the dialled ends (non-blocking, for
// the reader) as raw fds.
func floorSockets(n int) (w, r []int, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	acc := make(chan error, 1)
	go func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				acc <- err
				return
			}
			fd, err := dupConnFD(c)
			c.Close()
			if err == nil {
				err = syscall.SetNonblock(fd, false)
			}
			if err != nil {
				acc <- err
				return
			}
			w = append(w, fd)
		}
		acc <- nil
	}()
	for i := range n {
		ip, err := sourceIP(i, 20)
		if err != nil {
			return w, r, err
		}
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			ln.Close()
			<-acc
			return w, r, err
		}
		fd, err := dupConnFD(c)
		c.Close()
		if err != nil {
			ln.Close()
			<-acc
			return w, r, err
		}
		r = append(r, fd)
	}
	return w, r, <-acc
}

// floorRead drains the fds (non-blocking) until stop, adding the bytes
// read to n. It reads as a fan-out client process does (one reader, one
// read per ready socket, a 1 ms pause after a wake-up that found few
// sockets ready), so the writer pays the wake-ups a fan-out's writes pay.
func floorRead(fds []int, n *atomic.Int64, stop chan struct{}) error {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer syscall.Close(ep)
	for i, fd := range fds {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
	}
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		k, err := syscall.EpollWait(ep, events, 50)
		if err != nil && err != syscall.EINTR {
			return err
		}
		for _, ev := range events[:max(k, 0)] {
			m, _ := syscall.Read(fds[ev.Fd], buf)
			if m > 0 {
				n.Add(int64(m))
			}
		}
		if k < len(events)/8 {
			// As the fan-out clients do (--client-coalesce): let more
			// sockets become ready rather than be woken by every write.
			time.Sleep(time.Millisecond)
		}
	}
}
