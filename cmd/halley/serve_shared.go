package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/jsclient"
	"github.com/halleypush/halley/protocol"
)

// What every kind of node (`serve` alone, a store node, a light node)
// sets up the same way.

// servePages gives the API the JS clients (JS-01), cached for five
// minutes then revalidated by ETag so that a new release reaches browsers
// within minutes, and the demo page and its endpoints, which exist
// while the demo account does; the page carries only its username and
// public cf_api_key.
func servePages(o *protocol.Options) {
	o.Pages = map[string]protocol.Page{}
	for _, a := range jsclient.Assets() {
		o.Pages[a.Path] = protocol.Page{ContentType: a.ContentType, Body: a.Body, CacheControl: "public, max-age=300"}
	}
	o.Demo.Account = demoAccount
	o.Demo.Page = jsclient.DemoPage
}

// procsFor is the GOMAXPROCS a node with loops event loops sets, or 0 to
// leave Go's own default: an operator who gives --loops N asks for N
// cores, as nginx's worker_processes does, and Go code beyond the loops
// (the committer, the syncer, readers, the NATS link) is a fraction of
// theirs. With more threads than loops, every hand-off between them (a
// write to the committer, a synced group back to its loop) wakes a
// thread on another CPU, and Go's monitor thread, finding one thread
// always in fdatasync, takes its P away every 20 µs: on 2 cores with one
// loop, GOMAXPROCS 1 took a publish from 1.6 context switches to 0.9 and
// its server CPU down by a sixth (TestProcsFor's comment has the
// figures). GOMAXPROCS in the environment wins; 0 loops (one per CPU)
// keeps Go's default, which follows a container's CPU limit.
func procsFor(loops int, env string) int {
	if env != "" || loops <= 0 {
		return 0
	}
	return loops
}

// setProcs applies procsFor to this process.
func setProcs(loops int, log *slog.Logger) {
	if n := procsFor(loops, os.Getenv("GOMAXPROCS")); n > 0 && n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
		log.Debug("GOMAXPROCS set to the loop count", "procs", n)
	}
}

// runEngine runs srv; once it serves, ready runs (the "halley serving"
// lines). On SIGTERM or SIGINT it drains (C-11, bounded by drain + 2 s)
// and returns nil; if the engine stops by itself, its error.
func runEngine(srv *engine.Server, drain time.Duration, log *slog.Logger, ready func()) error {
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run() }()
	select {
	case <-srv.Ready():
	case err := <-runErr:
		return fmt.Errorf("engine: %w", err)
	}
	ready()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	select {
	case s := <-sig:
		log.Info("graceful stop", "signal", s.String())
		ctx, cancel := context.WithTimeout(context.Background(), drain+2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("drain incomplete", "err", err)
		}
		if err := <-runErr; err != nil {
			log.Warn("engine stopped with error", "err", err)
		}
		return nil
	case err := <-runErr:
		if err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		return nil
	}
}
