//go:build !unix

package engine

import (
	"errors"
	"net"
)

// anchorPair: no socketpair here; discovery has nothing to enroll and
// loops are woken by gnet's Execute.
func anchorPair() (enrolled, kept net.Conn, err error) {
	return nil, nil, errors.New("engine: no socketpair on this system")
}

func (lp *loop) wakeLocked() bool { return false }
