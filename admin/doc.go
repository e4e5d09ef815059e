// Package admin owns Halley's internal HTTP listener (--admin-listen,
// loopback by default): /metrics with everything the public /metrics
// serves plus the Go runtime's, the process's and Pebble's series,
// /healthz (as the public one, C-10), /readyz (ready only when every
// readiness check passes: store open and healthy, engine serving, not
// draining, and whatever a cluster node adds) and net/http/pprof under
// /debug/pprof/.
//
// It runs on net/http on its own goroutines, never on the event loops:
// it is for operators and scrapers, not a hot path. It holds no global
// state: each Server has its own mux (pprof's handlers are registered on
// it, not on http.DefaultServeMux) and its own Prometheus registry for
// the runtime and process collectors.
//
// series.go names the engine's and the store's series, which the public
// /metrics serves too, and Pebble's, which only this listener serves.
package admin
