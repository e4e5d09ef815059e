package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"

	"github.com/halleypush/halley/admin"
	"github.com/halleypush/halley/config"
	"github.com/halleypush/halley/control"
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/memtrim"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/protocol"
)

// serveConfig is everything `halley serve` is told, filled from flags,
// the environment and a config file (config.go).
type serveConfig struct {
	engine     engine.Options
	store      persist.Options
	api        protocol.Options
	admin      admin.Options
	trim       memtrim.Options
	logLevel   string
	logFormat  string
	cpuProfile string
	cluster    clusterConfig
}

// serveFlags declares serve's flags on fs: each package's own (with its
// documented defaults) and the process's. A flag declared here gets its
// environment variable, config file key and `halley config print` line
// from config.Parse. The returned function completes cfg once fs is
// parsed.
func serveFlags(fs *flag.FlagSet, cfg *serveConfig) (finish func() error) {
	cfg.engine.RegisterFlags(fs)
	cfg.store.RegisterFlags(fs)
	cfg.api.RegisterFlags(fs)
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	cfg.logFormat = "text"
	fs.Var(config.Choice{Dst: &cfg.logFormat, Choices: []string{"text", "json"}}, "log-format", "text or json (log/slog's handlers)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile to this file until the server stops (for tuning)")
	cfg.admin.RegisterFlags(fs)
	cfg.trim.RegisterFlags(fs)
	clusterFlags(fs, &cfg.cluster)
	return func() error {
		if err := cfg.cluster.check(); err != nil {
			return err
		}
		// Retain every push as long as either window can ask for it.
		cfg.store.CFRetain = max(cfg.api.CFReplayWindow, cfg.api.CFResumeWindow)
		return nil
	}
}

// newLogger returns a text logger at level (info if it does not parse).
func newLogger(w io.Writer, level string) *slog.Logger {
	l, _ := newFormatLogger(w, level, "text")
	return l
}

// newFormatLogger returns a logger at level (info if it does not parse,
// as --log-level always did) writing format: text or json.
func newFormatLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func serveMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("halley serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	finish := serveFlags(fs, &cfg)
	if _, err := config.Parse(fs, args); err != nil {
		if !errors.Is(err, config.ErrFlags) {
			fmt.Fprintln(stderr, "halley serve:", err)
		}
		return 2
	}
	if err := finish(); err != nil {
		fmt.Fprintln(stderr, "halley serve:", err)
		return 2
	}
	log, err := newFormatLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "halley serve:", err)
		return 2
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "halley serve: --cpuprofile:", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if err := serve(cfg, log, stdout); err != nil {
		log.Error("halley serve failed", "err", err)
		return 1
	}
	return 0
}

func serve(cfg serveConfig, log *slog.Logger, stdout io.Writer) (err error) {
	setProcs(cfg.engine.Loops, log)
	if cfg.cluster.light() {
		return serveLight(cfg, log, stdout)
	}
	engine.RaiseFileLimit(log)
	if cfg.store.Sync == persist.SyncNone {
		log.Warn("!!! --sync=none: writes are acknowledged BEFORE they reach the disk; a crash can lose acknowledged messages. Use only for benchmarks. !!!")
	}
	// persist creates the data directory 0700 and its files 0600 (C-14).
	if storageFaults != nil && cfg.store.FS == nil {
		cfg.store.FS = storageFaults() // test builds only (tag halley_faultfs)
	}
	// every account change closes what the changed credential
	// admitted. The store calls back once the change is durable; the API
	// is built after the store, so the hook reads it once it is set.
	//
	// Issue 16: the store calls AfterBatch after each committed group's
	// completions, on its syncer goroutine, so that the API posts one
	// task per group per loop. Both hooks may run before the API exists
	// (the demo account is added first), hence the atomic pointer.
	var api *protocol.API
	var hooked atomic.Pointer[protocol.API]
	cl := &storeWiring{cfg: cfg.cluster, log: log} // --nats: this is the store node
	defer cl.close()                               // after the store's Close: its last answers go out
	cfg.store.OnAccountChange = func(name string) {
		if a := hooked.Load(); a != nil {
			a.AccountChanged(name)
		}
		cl.accountChanged(name)
	}
	cfg.store.AfterBatch = func() {
		if a := hooked.Load(); a != nil {
			a.AfterBatch()
		}
		cl.afterBatch()
	}
	store, err := persist.Open(cfg.store)
	if err != nil {
		return fmt.Errorf("open store in %s: %w", cfg.store.Dir, err)
	}
	defer func() {
		// A store that could not sync (failed, or stalled past its bound)
		// makes the exit status say so: a supervisor must not take this
		// for a clean stop.
		if cerr := store.Close(); cerr != nil {
			log.Error("closing store", "err", cerr)
			if err == nil {
				err = fmt.Errorf("close store: %w", cerr)
			}
		}
	}()

	// Accounts of an older data directory got separate keys at Open:
	// their new private api_keys are shown now, once (see persist's doc).
	if m := store.Migrated(); len(m) > 0 {
		announceMigrated(stdout, m)
		log.Warn("accounts migrated to separate keys: EZComet publishers must switch to the new private api_key printed on stdout", "accounts", len(m))
	}
	demo, created, err := ensureDemoAccount(store)
	if err != nil {
		return err
	}

	if cfg.api.Store, err = cl.wrap(store, &hooked); err != nil {
		return err
	}
	cfg.api.Log = log
	servePages(&cfg.api)
	// /metrics reads the engine's counters; the engine is built after the
	// API it serves, so the closure reads srv once it is set.
	var srv *engine.Server
	cfg.api.Metrics = func(dst []byte) []byte { return admin.AppendSystem(dst, srv, store) }
	api, err = protocol.New(cfg.api)
	if err != nil {
		return err
	}
	srv, err = engine.New(cfg.engine, api, log)
	if err != nil {
		return err
	}
	api.Attach(srv)
	hooked.Store(api)
	defer api.Close() // before the store's Close: the readers finish first
	if err := cl.serve(); err != nil {
		return err
	}

	ctl, err := control.Listen(control.SocketPath(cfg.store.Dir), store, log)
	if err != nil {
		log.Warn("control socket unavailable: `halley account` and `halley backup` will not reach this server", "err", err)
	} else {
		defer ctl.Close() // before the store's Close: a backup in progress completes first
	}

	if cl.link != nil { // a store node is ready while it reaches NATS
		cfg.admin.Ready = append(cfg.admin.Ready, admin.Check{Name: "nats", Err: linkConnected(cl.link)})
	}
	trim := memtrim.Start(cfg.trim)
	defer trim.Stop()
	parts := storeParts(store)
	parts.trim = trim
	internal, err := startInternalListener(cfg.admin, api, srv, parts, log, stdout)
	if err != nil {
		return err
	}
	defer internal.Close() // before the store's Close: /metrics reads it

	listen := listenOrDefault(cfg.engine.Listen)
	return runEngine(srv, cfg.engine.DrainTimeout, log, func() {
		if created {
			fmt.Fprintf(stdout, "created account %s: api_key=%s cf_api_key=%s api_secret=%s\n", demo.Username, demo.APIKey, demo.CFAPIKey, demo.APISecret)
		}
		fmt.Fprintf(stdout, "halley serving %s (data %s, sync=%s)\n", strings.Join(listen, ", "), cfg.store.Dir, cfg.store.Sync)
		if demo.Username != "" {
			fmt.Fprintf(stdout, "demo page: http://%s/  (account %s, cf_api_key %s)\n", demoPageAddr(listen), demo.Username, demo.CFAPIKey)
			warnDemoExposed(log, listen, cfg.api.Demo.Open)
		}
	})
}

func listenOrDefault(l []string) []string {
	if len(l) == 0 {
		return []string{"127.0.0.1:8080"}
	}
	return l
}

// demoAccount is the account `serve` creates on an empty data directory,
// the only one the demo page and its endpoints serve.
const demoAccount = "demo"

// ensureDemoAccount creates the demo account on an empty data directory
// and returns it; created says whether it is new. With other
// accounts and no demo account it returns the zero Account.
func ensureDemoAccount(store *persist.Store) (persist.Account, bool, error) {
	if a, ok := store.AccountByName([]byte(demoAccount)); ok {
		return a, false, nil
	}
	if len(store.Accounts()) > 0 {
		// Other accounts exist: the operator removed demo on purpose, so
		// it stays removed and neither the demo page nor its endpoints
		// (which write and push as the demo account) exist.
		return persist.Account{}, false, nil
	}
	a, err := store.AddAccount(demoAccount)
	if err != nil && !errors.Is(err, persist.ErrAccountExists) {
		return a, false, fmt.Errorf("create demo account: %w", err)
	}
	return a, true, nil
}

// demoPageAddr is the address the demo page's URL names: the first
// loopback listen address, as the page answers loopback clients only
// (without --demo); an unspecified host (":8080", "0.0.0.0:8080") is
// reached on 127.0.0.1 or [::1].
func demoPageAddr(listen []string) string {
	for _, l := range listen {
		if host, _, err := net.SplitHostPort(l); err == nil && isLoopbackHost(host) {
			return l
		}
	}
	host, port, err := net.SplitHostPort(listen[0])
	if err != nil {
		return listen[0]
	}
	switch host {
	case "", "0.0.0.0":
		return net.JoinHostPort("127.0.0.1", port)
	case "::":
		return net.JoinHostPort("::1", port)
	}
	return listen[0]
}

// isLoopbackHost: a listen host that only this machine can reach.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// warnDemoExposed warns when the demo account exists and a listener is
// not on loopback: whoever reaches the port is refused the demo
// page and endpoints unless open (--demo), when it may write and push as
// the demo account.
func warnDemoExposed(log *slog.Logger, listen []string, open bool) {
	var exposed []string
	for _, l := range listen {
		if host, _, err := net.SplitHostPort(l); err != nil || !isLoopbackHost(host) {
			exposed = append(exposed, l)
		}
	}
	switch {
	case open:
		log.Warn("--demo: every client that reaches "+strings.Join(listen, ", ")+
			" may load the demo page and write and push as the demo account; remove it (halley account rm demo) before exposing this server",
			"account", demoAccount)
	case len(exposed) > 0:
		log.Warn("the demo account exists and halley listens on a non-loopback address: its page and endpoints answer loopback clients only (--demo opens them to everyone); remove it (halley account rm demo) before exposing this server",
			"account", demoAccount, "listen", strings.Join(exposed, ", "))
	}
}
