//go:build unix

package engine

import (
	"log/slog"
	"net"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and logs
// both, so the number of connections is bounded by what the system
// allows, never by a default soft limit.
func RaiseFileLimit(log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("engine: read file limit", "err", err)
		return
	}
	before := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("engine: raise file limit", "soft", before, "hard", lim.Max, "err", err)
			return
		}
	}
	log.Info("engine: file limit", "soft_before", before, "soft", lim.Cur, "hard", lim.Max)
}

// fdReserve is how many descriptors the default MaxConns leaves for
// everything that is not a client connection.
const fdReserve = 256

// defaultMaxConns derives MaxConns from the current soft file limit.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<40 {
		return 1 << 30
	}
	return max(int(lim.Cur)-fdReserve, 16)
}

// listenerAddr asks the kernel which address a listener is bound to (the
// port chosen for ":0"). It returns nil when gnet has no such listener.
func listenerAddr(eng gnet.Engine, addr string) net.Addr {
	fd, err := eng.DupListener("tcp", addr)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil
	}
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// halfClose shuts the write side of a socket: the peer reads our FIN
// after the last byte, and we can still read what it sends.
func halfClose(fd int) error {
	return syscall.Shutdown(fd, syscall.SHUT_WR)
}
