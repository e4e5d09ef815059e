package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/halleypush/halley/admin"
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/memtrim"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/protocol"
)

// internalParts is what the internal listener reads besides the API and
// the engine: the store's health (persist's on a single or store node,
// the LightStore's on a light node: NATS connected and the store node
// answering) and the series only the internal listener serves (Pebble's;
// nil on a light node).
type internalParts struct {
	health  func() error
	storage func(dst []byte) []byte
	trim    *memtrim.Trimmer // nil when trimming is off
}

// storeParts are a persist store's.
func storeParts(store *persist.Store) internalParts {
	return internalParts{health: store.Healthy, storage: func(dst []byte) []byte {
		if m, err := store.StorageMetrics(); err == nil {
			dst = admin.AppendStorage(dst, m)
		}
		return dst
	}}
}

// startInternalListener starts the internal listener (--admin-listen) on
// the server's parts and prints its address, so that a test given port
// 0 finds it. It returns nil when the listener is off or its default
// address was taken; Close it before the store.
func startInternalListener(opts admin.Options, api *protocol.API, srv *engine.Server, parts internalParts, log *slog.Logger, stdout io.Writer) (*admin.Server, error) {
	opts.Log = log
	errDraining := errors.New("shutting down")
	draining := func() bool { return srv.Draining() || api.Draining() }
	opts.Health = func() error { // as the public /healthz (C-10)
		if draining() {
			return errDraining
		}
		return parts.health()
	}
	errStarting, errStopped := errors.New("event loops starting"), errors.New("event loops stopped")
	opts.Ready = append([]admin.Check{
		{Name: "store", Err: parts.health},
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
		if parts.storage != nil {
			dst = parts.storage(dst)
		}
		return parts.trim.AppendMetrics(dst)
	}
	s, err := admin.Start(opts)
	if s != nil {
		fmt.Fprintf(stdout, "halley internal listener http://%s/ (metrics, healthz, readyz, debug/pprof)\n", s.Addr())
	}
	return s, err
}
