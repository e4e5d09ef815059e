//go:build !linux

package control

import "net"

// checkPeer: outside Linux the socket's file mode and the data
// directory's (0700) are the guard.
func checkPeer(net.Conn) error { return nil }
