package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/admin"
	"github.com/halleypush/halley/cluster"
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/memtrim"
	"github.com/halleypush/halley/persist"
	"github.com/halleypush/halley/protocol"
)

// The cluster wiring of `halley serve` (issue 17, docs/cluster.md):
// --nats joins a service of several nodes; --node-role says whether this
// node is the service's one store node (it owns the data directory) or a
// light node (connections only: no Pebble, no data directory).

const (
	roleStore = "store"
	roleLight = "light"
)

// clusterConfig is what serve's cluster flags say.
type clusterConfig struct {
	nats   string
	role   string
	prefix string
}

// clusterFlags declares the cluster flags of `halley serve`.
func clusterFlags(fs *flag.FlagSet, c *clusterConfig) {
	fs.StringVar(&c.nats, "nats", "", "NATS URL (comma-separated for a NATS cluster): join a service of several nodes (docs/cluster.md); default: a single node")
	fs.StringVar(&c.role, "node-role", roleStore, "with --nats: store (the one node that owns the data directory) or light (connections only, no data directory)")
	fs.StringVar(&c.prefix, "nats-prefix", "halley", "with --nats: subject prefix, so several services can share one NATS")
}

// check reports a bad combination.
func (c *clusterConfig) check() error {
	if c.role != roleStore && c.role != roleLight {
		return fmt.Errorf("--node-role must be %s or %s, not %q", roleStore, roleLight, c.role)
	}
	if c.role == roleLight && c.nats == "" {
		return fmt.Errorf("--node-role %s needs --nats", roleLight)
	}
	return nil
}

func (c *clusterConfig) light() bool { return c.nats != "" && c.role == roleLight }

func (c *clusterConfig) linkOptions(log *slog.Logger, name string) cluster.LinkOptions {
	return cluster.LinkOptions{URL: c.nats, Name: name, Prefix: c.prefix,
		Logf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }}
}

// storeWiring is a store node's cluster side; its zero value (no --nats)
// does nothing.
type storeWiring struct {
	cfg  clusterConfig
	log  *slog.Logger
	link *cluster.Link
	node atomic.Pointer[cluster.StoreNode]
}

// afterBatch publishes the group just committed (persist's AfterBatch,
// after the API's).
func (w *storeWiring) afterBatch() {
	if n := w.node.Load(); n != nil {
		n.AfterBatch()
	}
}

// accountChanged tells the light nodes (persist's OnAccountChange).
func (w *storeWiring) accountChanged(name string) {
	if n := w.node.Load(); n != nil {
		n.AccountChanged(name)
	}
}

// wrap dials NATS and returns the store the API takes: store itself
// without --nats, else the StoreNode around it (not serving yet).
func (w *storeWiring) wrap(store *persist.Store, api *atomic.Pointer[protocol.API]) (protocol.Store, error) {
	if w.cfg.nats == "" {
		return store, nil
	}
	link, err := cluster.Dial(w.cfg.linkOptions(w.log, "halley-store"))
	if err != nil {
		return nil, err
	}
	w.link = link
	n := cluster.NewStoreNode(store, link, func(d *cluster.Delivery) {
		if a := api.Load(); a != nil {
			deliver(a, d)
		}
	})
	w.node.Store(n)
	return n, nil
}

// serve starts answering the light nodes; call once the API is attached.
func (w *storeWiring) serve() error {
	if n := w.node.Load(); n != nil {
		if err := n.Serve(); err != nil {
			return err
		}
		w.log.Info("store node serving the service", "nats", w.cfg.nats, "prefix", w.cfg.prefix)
	}
	return nil
}

// close sends what the outbox holds and hangs up; after the store closed.
func (w *storeWiring) close() {
	if w.link != nil {
		_ = w.link.Flush(context.Background())
		w.link.Close()
	}
}

// deliver hands a delivery to the API's loops (not yet posted: the
// caller runs AfterBatch after its run).
func deliver(a *protocol.API, d *cluster.Delivery) {
	if d.Kind == cluster.EZ {
		a.DeliverEZ(string(d.Name), d.Seq, d.Tick, d.Body)
	} else {
		a.DeliverCF(string(d.Name), d.Seq, d.Secret, d.Body)
	}
}

// serveLight runs a light node: the protocol over a LightStore, no data
// directory, no admin socket (`halley account` goes to the store node).
func serveLight(cfg serveConfig, log *slog.Logger, stdout io.Writer) error {
	engine.RaiseFileLimit(log)
	var api atomic.Pointer[protocol.API]
	rep := &cluster.Repairer{}
	opts := cfg.cluster.linkOptions(log, fmt.Sprintf("halley-light-%d", os.Getpid()))
	opts.OnDelivery = func(d cluster.Delivery) {
		a := api.Load()
		if a == nil {
			return // nothing followed yet
		}
		if d.Kind == cluster.EZ {
			a.DeliverEZ(string(d.Name), d.Seq, d.Tick, d.Body)
			return
		}
		a.DeliverCF(string(d.Name), d.Seq, d.Secret, d.Body)
	}
	opts.AfterDeliveries = func() {
		if a := api.Load(); a != nil {
			a.AfterBatch()
		}
	}
	opts.OnRepair = rep.OnRepair
	link, err := cluster.Dial(opts)
	if err != nil {
		return err
	}
	defer link.Close()
	rep.Link = link
	rep.Deliver = func(kind cluster.Kind, name string, ans cluster.ReadAnswer) {
		a := api.Load()
		if a == nil {
			return
		}
		for i := range ans.Messages {
			m := &ans.Messages[i]
			d := cluster.Delivery{Kind: kind, Name: []byte(name), Seq: m.Seq, Secret: m.Secret, Tick: m.Tick, Body: m.Body}
			deliver(a, &d)
		}
		a.AfterBatch()
	}
	rep.Start(4)
	defer rep.Close()
	fwd, err := link.NewForwarder(func() {
		if a := api.Load(); a != nil {
			a.AfterBatch()
		}
	}, 0)
	if err != nil {
		return err
	}
	defer fwd.Close()
	accounts, err := followAccounts(link, log, func(name string) {
		if a := api.Load(); a != nil {
			a.AccountChanged(name)
		}
	})
	if err != nil {
		return err
	}
	defer accounts.Close()
	store := cluster.NewLightStore(link, fwd, accounts, 0)
	defer store.Close()

	cfg.api.Store = store
	cfg.api.Log = log
	if cfg.api.Readers <= 0 {
		// Each read waits one NATS round trip, and a read that joins an
		// identical one (cluster/coalesce.go) waits for it on its reader:
		// readers here are waits, not work. 16 left a 13-node cluster's
		// first reads still queued 5 s after its connections opened.
		cfg.api.Readers = 64
	}
	cfg.api.Interest = func(cf bool, name string, on bool) {
		kind := cluster.EZ
		if cf {
			kind = cluster.CF
		}
		var err error
		if on {
			err = link.Subscribe(kind, name, cluster.LastUnknown)
		} else {
			err = link.Unsubscribe(kind, name)
		}
		if err != nil {
			log.Warn("cluster: follow", "name", name, "on", on, "err", err)
		}
	}
	servePages(&cfg.api)
	var srv *engine.Server
	cfg.api.Metrics = func(dst []byte) []byte { return store.AppendMetrics(admin.AppendEngine(dst, srv)) }
	a, err := protocol.New(cfg.api)
	if err != nil {
		return err
	}
	srv, err = engine.New(cfg.engine, a, log)
	if err != nil {
		return err
	}
	a.Attach(srv)
	api.Store(a)
	defer a.Close()

	// The internal listener: /readyz is ready while NATS is connected and
	// the store node answers (the LightStore's health); /metrics carries
	// the engine's and the Link's series.
	trim := memtrim.Start(cfg.trim)
	defer trim.Stop()
	internal, err := startInternalListener(cfg.admin, a, srv, internalParts{health: store.Healthy, trim: trim}, log, stdout)
	if err != nil {
		return err
	}
	defer internal.Close()

	return runEngine(srv, cfg.engine.DrainTimeout, log, func() {
		fmt.Fprintf(stdout, "halley serving %s (light node, nats %s)\n", strings.Join(listenOrDefault(cfg.engine.Listen), ", "), cfg.cluster.nats)
	})
}

// followAccounts fetches the store node's account table, waiting for the
// store node (it may still be starting) up to a minute.
func followAccounts(link *cluster.Link, log *slog.Logger, onChange func(string)) (*cluster.AccountCache, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := link.FollowAccounts(ctx, onChange)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		log.Info("waiting for the store node", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
}

// linkConnected is a readiness check: NATS is connected.
func linkConnected(link *cluster.Link) func() error {
	return func() error {
		if !link.Connected() {
			return errNATSDisconnected
		}
		return nil
	}
}

var errNATSDisconnected = errors.New("NATS disconnected")
