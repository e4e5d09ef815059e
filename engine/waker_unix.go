//go:build unix

package engine

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// anchorPair returns the two ends of a connected socketpair: gnet
// enrolls the first, the engine keeps the second as a waker.
func anchorPair() (enrolled, kept net.Conn, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	conns := [2]net.Conn{}
	for i, fd := range fds {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "halley-wake")
		// FileConn duplicates the descriptor and makes it non-blocking.
		conns[i], err = net.FileConn(f)
		_ = f.Close()
		if err != nil {
			if i == 1 {
				_ = conns[0].Close()
			} else {
				_ = unix.Close(fds[1])
			}
			return nil, nil, fmt.Errorf("socketpair: %w", err)
		}
	}
	return conns[0], conns[1], nil
}

// wakeLocked wakes the loop through its waker; false when it has none or
// the write failed for another reason than a full socket buffer (unread
// wake bytes: the loop is woken already). Called with lp.mu held.
func (lp *loop) wakeLocked() bool {
	if lp.wakeFD < 0 {
		return false
	}
	_, err := unix.Write(lp.wakeFD, wakeByte)
	return err == nil || errors.Is(err, unix.EAGAIN)
}
