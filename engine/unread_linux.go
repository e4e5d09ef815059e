package engine

import "golang.org/x/sys/unix"

// unreadInput reports whether socket fd holds bytes its loop has not read
// yet (SIOCINQ). A peer the clock says is silent may have answered while
// its loop was busy with others: a busy loop's deadline sweep can come
// before the read event of a pong already in the socket.
func unreadInput(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return err == nil && n > 0
}
