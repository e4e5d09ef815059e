//go:build !linux

package bench

import (
	"bufio"
	"errors"
	"net"
)

// Without epoll the clients hold a goroutine per connection.
const epollAvailable = false

type epollSubs struct{}

func newEpollSubs(o epollOptions, st *clientStats) (*epollSubs, error) {
	return nil, errors.New("epoll readers need Linux")
}

func (e *epollSubs) add(idx int, conn net.Conn, br *bufio.Reader) error {
	conn.Close()
	return errors.New("epoll readers need Linux")
}

func (e *epollSubs) reset() []int { return nil }
