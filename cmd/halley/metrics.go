package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/halleypush/halley/admin"
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/protocol"
)

// startInternalListener starts the internal listener (--admin-listen) on
// the server's parts and prints its address, so that a test given port
// 0 finds it. It returns nil when the listener is off or its default
// address was taken; Close it before the store.
func startInternalListener(opts admin.Options, api *protocol.API, srv *engine.Server, store *persist.Store, log *slog.Logger, stdout io.Writer) (*admin.Server, error) {
	opts.Log = log
	errDraining := errors.New("shutting down")
	draining := func() bool { return srv.Draining() || api.Draining() }
	opts.Health = func() error { // as the public /healthz (C-10)
		if draining() {
			return errDraining
		}
		return store.Healthy()
	}
	errStarting, errStopped := errors.New("event loops starting"), errors.New("event loops stopped")
	opts.Ready = append([]admin.Check{
		{Name: "store", Err: store.Healthy},
		{Name: "engine", Err: func() error {
			select {
			case <-srv.Done():
				return errStopped
			default:
			}
			select {
			case <-srv.Ready():
				return nil
			default:
				return errStarting
			}
		}},
		{Name: "draining", Err: func() error {
			if draining() {
				return errDraining
			}
			return nil
		}},
	}, opts.Ready...)
	opts.Metrics = func(dst []byte) []byte {
		dst = api.AppendMetrics(dst)
		if m, err := store.StorageMetrics(); err == nil {
			dst = admin.AppendStorage(dst, m)
		}
		return dst
	}
	s, err := admin.Start(opts)
	if s != nil {
		fmt.Fprintf(stdout, "halley internal listener http://%s/ (metrics, healthz, readyz, debug/pprof)\n", s.Addr())
	}
	return s, err
}
