//go:build !linux || poll_opt

package engine

import (
	"errors"

	"github.com/panjf2000/gnet/v2"
)

// Without gnet's default epoll poller the engine cannot pause reads (see
// readpause_linux.go): a connection whose reads should pause is cut by
// Options.MaxPipelined instead.

// pauseSupported: reads cannot be paused on this platform.
const pauseSupported = false

var errNoPause = errors.New("engine: pausing reads is not supported here")

func pollerFD(gnet.Conn) (int, bool)   { return -1, false }
func pauseReads(int, gnet.Conn) error  { return errNoPause }
func resumeReads(int, gnet.Conn) error { return errNoPause }
