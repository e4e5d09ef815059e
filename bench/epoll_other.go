//go:build !linux

package bench

import (
	"bufio"
	"errors"
	"net"
	"time"
)

// Without epoll the fan-out clients hold a goroutine per subscriber.
const epollAvailable = false

type epollSubs struct{}

func newEpollSubs(n, subs int, coalesce time.Duration, f *fanState, st *clientStats) (*epollSubs, error) {
	return nil, errors.New("epoll readers need Linux")
}

func (e *epollSubs) add(i int, conn net.Conn, br *bufio.Reader) error {
	conn.Close()
	return errors.New("epoll readers need Linux")
}

func (e *epollSubs) reset() []int { return nil }
