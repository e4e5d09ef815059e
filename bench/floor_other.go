//go:build !linux

package bench

import (
	"context"
	"errors"
	"io"
)

func runFloor(ctx context.Context, c floorConfig, log io.Writer) ([]floorResult, error) {
	return nil, errors.New("bench floor needs Linux (epoll, per-thread getrusage)")
}
