package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// maxLoops is gnet's own cap on event loops (its gfd keeps the loop index
// in one byte).
const maxLoops = 256

func defaultLoops() int { return runtime.NumCPU() }

var _ Loops = (*Server)(nil)

// Server runs the gnet engine for one Handler. It implements Loops.
//
// New, Run, Shutdown, Ready, Addrs, Stats and the Loops methods are safe
// from any goroutine.
type Server struct {
	opts Options
	h    Handler
	// pipeliner is h's Pipeliner, nil when it has none.
	pipeliner Pipeliner
	log       *slog.Logger
	start     time.Time // monotonic origin of every loop's clock

	loops []*loop

	// loopTable maps a gnet loop handle to our loop; it is filled as the
	// loops are discovered (see discoverLoops) and read on every accept.
	tableMu   sync.Mutex
	table     atomic.Pointer[map[gnet.EventLoop]*loop]
	nextIndex int

	engMu    sync.Mutex
	eng      gnet.Engine
	booted   bool
	running  atomic.Bool
	draining atomic.Bool
	tickOnce sync.Once

	ready     chan struct{}
	anchors   chan struct{} // OnOpen handled a discovery anchor (waker.go)
	readyOnce sync.Once
	done      chan struct{}
	addrs     []net.Addr // set before ready is closed

	nextConnID atomic.Uint64
	open       atomic.Int64 // client connections open, for MaxConns
	maxConns   int64
	stopping   atomic.Bool             // Shutdown asked the engine to stop
	perIP      ClientCounts[ClientKey] // open connections per client address (C-12)
	nextSweep  time.Time               // ticker goroutine only
	refusals   *refusalLog             // one line per kind of refusal per interval

	// noGather writes every Send at once (benchmarks compare both ways).
	noGather bool
	// flushTurn is how many connections' gathered output a loop writes
	// before it serves its other work again (gather.go); 0: no limit.
	flushTurn int
	// turnsAfter is how long a flush goes before it is cut in turns; 0:
	// from its start.
	turnsAfter time.Duration
	// noPause behaves as where reads cannot be paused (tests of the
	// MaxPipelined safety net).
	noPause bool
}

// New checks opts (filling defaults) and returns a Server that is not yet
// listening; Run starts it. log may be nil (slog.Default()).
func New(opts Options, h Handler, log *slog.Logger) (*Server, error) {
	if h == nil {
		return nil, errors.New("engine: nil Handler")
	}
	if log == nil {
		log = slog.Default()
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.TrustedProxies = normalizePrefixes(opts.TrustedProxies)
	if opts.Loops > maxLoops {
		opts.Loops = maxLoops
	}
	s := &Server{
		opts:    opts,
		h:       h,
		log:     log,
		start:   time.Now(),
		ready:   make(chan struct{}),
		anchors: make(chan struct{}, 1),
		done:    make(chan struct{}),

		flushTurn:  defaultFlushTurn,
		turnsAfter: defaultTurnsAfter,
	}
	s.pipeliner, _ = h.(Pipeliner)
	s.refusals = newRefusalLog(log, refusalLogInterval)
	s.loops = make([]*loop, opts.Loops)
	for i := range s.loops {
		s.loops[i] = newLoop(s, i)
	}
	empty := map[gnet.EventLoop]*loop{}
	s.table.Store(&empty)
	return s, nil
}

// Run listens on every Options.Listen address and serves until Shutdown;
// it then returns nil. It returns an error at once when listening fails
// (Ready is then never closed). Run may be called once.
func (s *Server) Run() error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("engine: Run called twice")
	}
	defer close(s.done)
	s.maxConns = int64(s.opts.MaxConns)
	if s.maxConns <= 0 {
		s.maxConns = int64(defaultMaxConns())
	}
	addrs := make([]string, len(s.opts.Listen))
	for i, a := range s.opts.Listen {
		addrs[i] = "tcp://" + a
	}
	err := gnet.Rotate(&gnetHandler{s: s}, addrs,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.opts.Loops),
		gnet.WithReusePort(s.opts.ReusePort),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		// Least-connections is documented as safe next to Engine.Register,
		// which discoverLoops uses, and evens out long-lived connections.
		gnet.WithLoadBalancing(gnet.LeastConnections),
		gnet.WithLogger(gnetLogger{s.log}),
	)
	s.dropWakers()
	s.refusals.flushAll(s.clock())
	if err != nil {
		return fmt.Errorf("engine: serve %v: %w", s.opts.Listen, err)
	}
	if !s.stopping.Load() {
		// A loop ended on its own (gnet stops every loop when one fails,
		// e.g. on an accept error): not a graceful stop.
		return errors.New("engine: event loops stopped unexpectedly (see the log)")
	}
	return nil
}

// Ready is closed once every listener accepts and every loop can take
// Post'ed functions.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Draining reports whether a graceful stop has begun (Shutdown was
// called): readiness checks turn away new traffic from then on.
func (s *Server) Draining() bool { return s.draining.Load() }

// Done is closed when Run has returned.
func (s *Server) Done() <-chan struct{} { return s.done }

// Addrs returns the bound address of each Options.Listen entry, in order
// (useful with port 0). Valid after Ready is closed; nil before.
func (s *Server) Addrs() []net.Addr {
	select {
	case <-s.ready:
		return s.addrs
	default:
		return nil
	}
}

// Shutdown stops gracefully (C-11): new connections are closed as soon as
// they are accepted, Handler.Drain runs for every tagged connection on its
// loop, connections close once they are idle and their output is flushed,
// and after Options.DrainTimeout (or when ctx ends) the rest are closed
// hard and the engine stops; Run then returns nil. Shutdown returns once
// the engine has stopped, or ctx's error if it ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.running.Load() {
		return nil
	}
	select {
	case <-s.ready:
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.draining.CompareAndSwap(false, true) {
		s.Broadcast(func(i int) { s.loops[i].drainAll() })
	}
	deadline := time.Now().Add(s.opts.DrainTimeout)
	poll := time.NewTicker(5 * time.Millisecond)
	for s.Stats().OpenConns > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			deadline = time.Now()
		case <-s.done:
			poll.Stop()
			return nil
		case <-poll.C:
		}
	}
	poll.Stop()

	s.engMu.Lock()
	eng := s.eng
	s.engMu.Unlock()
	s.stopping.Store(true)
	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-stopCtx.Done():
		}
	}()
	err := eng.Stop(stopCtx)
	select {
	case <-s.done:
		return nil
	default:
	}
	if err != nil && ctx.Err() == nil {
		// Stop was cut short by Run returning, or the engine had already
		// stopped: wait for Run.
		<-s.done
		return nil
	}
	return err
}

// NumLoops is the number of event loops. Safe from any goroutine.
func (s *Server) NumLoops() int { return len(s.loops) }

// Post runs fn on loop i's goroutine soon, after any function posted to
// loop i before it. Safe from any goroutine. A function posted before the
// loop is running is kept and runs once it is; one posted after the
// server stopped is dropped (there is nothing left to deliver to).
// A panic in fn is logged and does not stop the loop. i out of range
// panics.
func (s *Server) Post(i int, fn func()) {
	s.loops[i].post(task{fn: fn})
}

// Broadcast runs fn(i) on every loop i, with the ordering of Post.
func (s *Server) Broadcast(fn func(loop int)) {
	for _, lp := range s.loops {
		lp.post(task{each: fn})
	}
}

// PostTask runs t.Run(i) on loop i, with the ordering of Post.
func (s *Server) PostTask(i int, t Task) {
	s.loops[i].post(task{t: t})
}

// BroadcastTask runs t.Run(i) on every loop i, with the ordering of Post.
func (s *Server) BroadcastTask(t Task) {
	for _, lp := range s.loops {
		lp.post(task{t: t})
	}
}

// loopOf returns our loop for a gnet loop handle, registering the handle
// when it is seen for the first time. Called on that loop's goroutine
// (OnOpen), so the handle is live.
func (s *Server) loopOf(el gnet.EventLoop) *loop {
	if lp, ok := (*s.table.Load())[el]; ok {
		return lp
	}
	s.tableMu.Lock()
	defer s.tableMu.Unlock()
	old := *s.table.Load()
	if lp, ok := old[el]; ok {
		return lp
	}
	if s.nextIndex >= len(s.loops) {
		// gnet runs exactly Options.Loops loops; a surplus handle would
		// be a gnet change we do not know. Share the last loop's state
		// rather than crash; its handle stays the first one seen.
		s.log.Error("engine: more gnet loops than configured", "loops", len(s.loops))
		return s.loops[len(s.loops)-1]
	}
	lp := s.loops[s.nextIndex]
	s.nextIndex++
	next := make(map[gnet.EventLoop]*loop, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[el] = lp
	s.table.Store(&next)
	lp.attach(el)
	return lp
}

func (s *Server) knownLoops() int {
	s.tableMu.Lock()
	defer s.tableMu.Unlock()
	return s.nextIndex
}

// discoverLoops learns every gnet loop's handle and gives each loop its
// waker (waker.go). gnet v2.10 exposes a loop only through its
// connections, so this enrolls one local connection after another: with
// least-connections balancing each lands on a loop that has none yet. The
// loop keeps the first one it gets as its waker's anchor; OnOpen closes
// any other. Runs on its own goroutine once, after the engine has
// started.
func (s *Server) discoverLoops() {
	defer s.readyOnce.Do(func() { s.collectAddrs(); close(s.ready) })
	s.engMu.Lock()
	eng := s.eng
	s.engMu.Unlock()
	for attempt := 0; attempt < 4*len(s.loops) && s.wakers() < len(s.loops); attempt++ {
		enrolled, kept, err := anchorPair()
		if err != nil {
			s.log.Error("engine: loop discovery", "err", err)
			return
		}
		// gnet enrolls a duplicate of one end and closes it; the other
		// stays with the engine.
		ctx := gnet.NewContext(gnet.NewNetConnContext(context.Background(), enrolled), anchor{peer: kept})
		res, err := eng.Register(ctx)
		if err != nil {
			_ = enrolled.Close()
			_ = kept.Close()
			s.log.Error("engine: loop discovery: register", "err", err)
			return
		}
		if r := <-res; r.Err != nil {
			_ = kept.Close()
			s.log.Error("engine: loop discovery: register", "err", r.Err)
			return
		}
		s.awaitAnchor()
	}
	if n := s.knownLoops(); n < len(s.loops) {
		s.log.Warn("engine: not every loop discovered yet; their posts wait for their first connection",
			"known", n, "loops", len(s.loops))
	}
}

func (s *Server) collectAddrs() {
	s.engMu.Lock()
	eng := s.eng
	s.engMu.Unlock()
	addrs := make([]net.Addr, len(s.opts.Listen))
	for i, a := range s.opts.Listen {
		addrs[i] = listenerAddr(eng, a)
	}
	s.addrs = addrs
}

// onTick runs on gnet's ticker goroutine: it starts loop discovery once,
// posts a deadline sweep to every known loop each SweepInterval, and,
// while connections wait for their output to drain, a look at them every
// drainPoll (gnet has one tick for all loops: it runs that often only
// while some connection waits).
func (s *Server) onTick() time.Duration {
	s.tickOnce.Do(func() { go s.discoverLoops() })
	now := time.Now()
	sweep := !now.Before(s.nextSweep)
	if sweep {
		s.nextSweep = now.Add(s.opts.SweepInterval)
		s.refusals.flush(s.clock())
	}
	waiting := false
	for _, lp := range s.loops {
		if !lp.attached() {
			continue
		}
		w := lp.waiting.Load() > 0
		switch {
		case sweep:
			lp.post(task{sweep: true})
		case w:
			lp.post(task{scan: true})
		}
		waiting = waiting || w
	}
	if waiting {
		return min(drainPoll, s.opts.SweepInterval)
	}
	return max(time.Until(s.nextSweep), time.Millisecond)
}

// normalizePrefixes unmaps IPv4-mapped prefixes and masks them, so that
// they match the unmapped addresses the engine compares them with.
func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// gnetHandler adapts gnet's callbacks to the loops.
type gnetHandler struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (g *gnetHandler) OnBoot(eng gnet.Engine) gnet.Action {
	g.s.engMu.Lock()
	g.s.eng = eng
	g.s.booted = true
	g.s.engMu.Unlock()
	return gnet.None
}

func (g *gnetHandler) OnTick() (time.Duration, gnet.Action) {
	return g.s.onTick(), gnet.None
}

func (g *gnetHandler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	lp := g.s.loopOf(gc.EventLoop())
	if a, ok := gc.Context().(anchor); ok {
		if lp.adopt(a.peer) {
			gc.SetContext(wakeAnchor{lp})
		} else {
			gc.SetContext(nil)
			_ = a.peer.Close() // gnet then closes this end
		}
		g.s.anchorSeen()
		return nil, gnet.None
	}
	return nil, lp.onOpen(gc)
}

func (g *gnetHandler) OnTraffic(gc gnet.Conn) gnet.Action {
	switch c := gc.Context().(type) {
	case *conn:
		return c.lp.onTraffic(c)
	case wakeAnchor:
		c.lp.onWake(gc)
	default:
		// A spare anchor or a connection being refused: drop its bytes.
		_, _ = gc.Discard(-1)
	}
	return gnet.None
}

func (g *gnetHandler) OnClose(gc gnet.Conn, _ error) gnet.Action {
	switch c := gc.Context().(type) {
	case *conn:
		c.lp.onClose(c)
	case wakeAnchor:
		c.lp.dropWaker()
	}
	return gnet.None
}

// gnetLogger sends gnet's own log lines to slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Infof(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Warnf(format string, args ...any) {
	g.l.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error("gnet: fatal: " + fmt.Sprintf(format, args...))
}
