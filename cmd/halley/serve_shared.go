package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
