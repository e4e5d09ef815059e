package protocol

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// Store is what the protocol needs from persistence; *persist.Store
// satisfies it.
type Store interface {
	AccountByAPIKey(apiKey []byte) (persist.Account, bool)
	AccountByCFKey(key []byte) (persist.Account, bool)
	Healthy() error
	AccountByName(username []byte) (persist.Account, bool)
	EZWriteTo(w persist.EZWrite, done persist.WriteCompletion)
	EZRead(qname string, tick []byte, lim persist.ReadLimit) (persist.ReadResult, error)
	EZReadAfter(qname string, after uint64, lim persist.ReadLimit) (persist.ReadResult, error)
	EZChannels(username string) []persist.ChannelStat
	CFPushTo(p persist.CFPush, done persist.CFCompletion)
	CFRead(topic []byte, after uint64, notBefore int64, lim persist.ReadLimit) (persist.CFReadResult, error)
	CFLast(topic []byte) uint64
}

// Page is a static answer served at a fixed path (demo page, JS clients).
type Page struct {
	ContentType string
	Body        []byte
	// CacheControl is sent as is. Default "no-cache": browsers keep the
	// page but revalidate it with its ETag.
	CacheControl string
}

// page is a Page ready to serve: its header block holds the ETag.
type page struct {
	ctype string
	hdrs  []byte
	etag  []byte
	body  []byte
}

// Options configures the API. Zero fields take their documented defaults.
type Options struct {
	// Store is required.
	Store Store
	// ReadBatch caps messages per read answer (EZ-R-06). Default 1000.
	ReadBatch int
	// ReadBatchBytes caps one long-poll answer's encoded JSON, EZComet or
	// Cometify, at least one message always going out (C-08). Default
	// 1 MiB.
	ReadBatchBytes int
	// DefaultTimeout is a long-poll's wait when none is given. Default 30 s.
	DefaultTimeout time.Duration
	// MaxTimeout is the largest timeout a long-poll may ask. Default 120 s.
	MaxTimeout time.Duration
	// DrainRetry is the mean of the jittered "retry_ms" hint given to
	// waiting polls on a graceful stop. Default 2 s.
	DrainRetry time.Duration
	// Metrics appends the Prometheus text of /metrics. Default: only the
	// protocol's own series.
	Metrics func(dst []byte) []byte
	// Pages are static answers by exact path (the JS clients).
	Pages map[string]Page
	// Demo configures the demo page at "/" and its endpoints.
	// Default: none.
	Demo Demo
	// Log receives connection-level errors. Default slog.Default().
	Log *slog.Logger

	// CFReplayWindow is how far back an id-0 Cometify listener replays
	// (CF-L-05, CF-P-08). Default 10 min.
	CFReplayWindow time.Duration
	// CFResumeWindow is how far back an id > 0 Cometify listener resumes
	// (CF-L-05). Default 3 min.
	CFResumeWindow time.Duration
	// MaxIdentifiers caps the identifiers of one listener (section 5).
	// Default 100.
	MaxIdentifiers int
	// Readers is how many goroutines run store reads (catch-ups,
	// replays, poll reads) off the event loops. Default 4.
	Readers int
	// ReadQueue is how many reads may wait for a reader in the queue; a
	// read that finds it full waits in the pool's overflow (at most one
	// per open connection), or, while the store's Healthy reports it
	// unavailable, is refused: 503 "storage unavailable" for a request, a
	// retry once drained for a stream. Default 1024.
	ReadQueue int
	// Interest, if set, is told on an event loop when that loop indexes
	// the first reader of an EZComet channel (cf false, name its qname) or
	// the first listener of a Cometify topic (cf true, name
	// "<username>/<identifier>"), on true, and on false when that loop
	// drops the entry: one to two seconds after its last one left, unless
	// another came meanwhile (index.go), or at once on a change of the
	// account. Each loop tells its own: calls for one name nest across
	// loops. A cluster light node follows the channel on NATS meanwhile
	// (docs/cluster.md). It must not block. Default: none.
	Interest func(cf bool, name string, on bool)
	// IndexSweep is how often each loop drops the index entries that
	// stayed empty since the last sweep (index.go). Default 1 s;
	// negative: never (tests that count a loop's tasks).
	IndexSweep time.Duration
	// Now is the clock replay windows and CF-P-10's ts are measured
	// with; it must be the store's (persist.Options.Now). Default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.ReadBatch <= 0 {
		o.ReadBatch = DefaultReadBatch
	}
	if o.ReadBatchBytes <= 0 {
		o.ReadBatchBytes = DefaultReadBatchBytes
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 30 * time.Second
	}
	if o.MaxTimeout <= 0 {
		o.MaxTimeout = 120 * time.Second
	}
	if o.DrainRetry <= 0 {
		o.DrainRetry = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.CFReplayWindow <= 0 {
		o.CFReplayWindow = DefaultCFReplayWindow
	}
	if o.CFResumeWindow <= 0 {
		o.CFResumeWindow = DefaultCFResumeWindow
	}
	if o.MaxIdentifiers <= 0 {
		o.MaxIdentifiers = DefaultMaxIdentifiers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Readers <= 0 {
		o.Readers = 4
	}
	if o.ReadQueue <= 0 {
		o.ReadQueue = 1024
	}
	if o.IndexSweep == 0 {
		o.IndexSweep = time.Second
	}
}

// Validate reports unusable options.
func (o *Options) Validate() error {
	if o.Store == nil {
		return errors.New("protocol: Options.Store is required")
	}
	if o.DefaultTimeout > o.MaxTimeout {
		return fmt.Errorf("protocol: DefaultTimeout %v exceeds MaxTimeout %v", o.DefaultTimeout, o.MaxTimeout)
	}
	return nil
}

// API implements engine.Handler for the EZComet API and the common
// endpoints (/healthz, /metrics, static pages).
type API struct {
	opts  Options
	store Store
	loops engine.Loops
	state []*loopState // indexed by loop
	stats apiStats
	cap   listenerCap
	pages map[string]page
	// draining is set once Drain has been called: new requests get 503.
	draining atomic.Bool

	// signers are each loop's CF-P-10 scratch, indexed by loop.
	signers []*hmacSigner
	// fan gathers the store's completions and posts them to the loops.
	fan fanOut
	// readers runs store reads off the loops (readers.go).
	readers   readPool
	readBufs  sync.Pool // *readBufs (readers.go)
	writeOps  sync.Pool // *writeOp, recycled after their group ran (ezwrite.go)
	pushOps   sync.Pool // *pushOp, likewise (cfpush.go)
	closeOnce sync.Once

	// sweepStop ends the sweeper (index.go), which closes sweepDone.
	sweepStop, sweepDone chan struct{}
	// epoch is clock's zero.
	epoch time.Time
}

// clock is a monotonic time in nanoseconds, for the index's timestamps.
func (a *API) clock() int64 { return int64(time.Since(a.epoch)) }

// New builds an API. Attach must be called before the engine runs.
func New(opts Options) (*API, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	a := &API{opts: opts, store: opts.Store, pages: make(map[string]page, len(opts.Pages)), epoch: time.Now()}
	a.readBufs.New = func() any { return new(readBufs) }
	for path, p := range opts.Pages {
		a.pages[path] = newPage(p)
	}
	return a, nil
}

func newPage(p Page) page {
	sum := sha256.Sum256(p.Body)
	etag := fmt.Appendf(nil, `"%x"`, sum[:12])
	cc := p.CacheControl
	if cc == "" {
		cc = "no-cache"
	}
	hdrs := fmt.Appendf(nil, "Cache-Control: %s\r\nETag: %s\r\n", cc, etag)
	return page{ctype: p.ContentType, hdrs: hdrs, etag: etag, body: p.Body}
}

// Attach connects the API to the engine's loops and starts its reader
// pool (see Close); call once, before the engine serves its first
// request.
func (a *API) Attach(l engine.Loops) {
	a.loops = l
	a.state = make([]*loopState, l.NumLoops())
	a.signers = make([]*hmacSigner, l.NumLoops())
	for i := range a.state {
		a.state[i] = newLoopState(a)
		a.signers[i] = newHMACSigner()
	}
	a.startReaders()
	a.startSweeper()
}

// Serve implements engine.Handler.
func (a *API) Serve(c engine.Conn, r *engine.Request) {
	ls := a.state[c.Loop()]
	path := r.Path
	if a.opts.Demo.Account != "" && isDemoPath(path) {
		a.serveDemo(ls, c, r)
		return
	}
	if string(r.Method) == "OPTIONS" {
		if isAPIPath(path) {
			c.Reply(204, ctJSON, hdrPreflight, nil)
			return
		}
	}
	switch string(path) {
	case "/write":
		a.serveWrite(ls, c, r)
	case "/read":
		a.serveRead(ls, c, r, subPoll)
	case "/read/ws":
		a.serveRead(ls, c, r, subWS)
	case "/read/sse":
		a.serveRead(ls, c, r, subSSE)
	case "/healthz":
		if !isGet(r) {
			a.replyError(c, nil, errMethod)
			return
		}
		if a.draining.Load() {
			a.replyError(c, nil, errShuttingDown)
			return
		}
		if a.store.Healthy() != nil {
			a.replyError(c, nil, errStorage) // C-10
			return
		}
		c.Reply(200, ctJSON, hdrAPI, bodyHealthy)
	case "/metrics":
		if !isGet(r) {
			a.replyError(c, nil, errMethod)
			return
		}
		ls.out = a.AppendMetrics(ls.out[:0])
		c.Reply(200, "text/plain; version=0.0.4; charset=utf-8", nil, ls.out)
	default:
		if p, ok := a.pages[string(path)]; ok && (isGet(r) || string(r.Method) == "HEAD") {
			a.servePage(c, r, &p)
			return
		}
		key, action, ident, ok := splitCFPath(path)
		if !ok {
			a.replyError(c, nil, errNotFound)
			return
		}
		if string(r.Method) == "OPTIONS" {
			c.Reply(204, ctJSON, hdrPreflight, nil)
			return
		}
		switch action {
		case cfPush:
			a.servePush(ls, c, r, key, ident)
		case cfListen:
			a.serveListen(ls, c, r, key, subWS)
		case cfPoll:
			a.serveListen(ls, c, r, key, subPoll)
		case cfSSE:
			a.serveListen(ls, c, r, key, subSSE)
		case cfStats:
			a.serveStats(c, r, key)
		}
	}
}

// servePage answers a static page, or 304 when the browser's copy is
// current.
func (a *API) servePage(c engine.Conn, r *engine.Request, p *page) {
	if r.Header != nil {
		if inm := r.Header.Peek("If-None-Match"); len(inm) > 0 && bytes.Contains(inm, p.etag) {
			c.Reply(304, p.ctype, p.hdrs, nil)
			return
		}
	}
	c.Reply(200, p.ctype, p.hdrs, p.body)
}

type cfAction uint8

const (
	cfPush cfAction = iota
	cfListen
	cfPoll
	cfSSE
	cfStats
)

// splitCFPath splits a Cometify path: /{apiKey}/push/{identifier},
// /{apiKey}/listen, /poll, /sse or /stats. The key and identifier are
// checked by the handlers (401, 400); any other shape is not a Cometify
// path.
func splitCFPath(p []byte) (key []byte, action cfAction, ident []byte, ok bool) {
	if len(p) < 2 || p[0] != '/' {
		return nil, 0, nil, false
	}
	rest := p[1:]
	i := bytes.IndexByte(rest, '/')
	if i <= 0 {
		return nil, 0, nil, false
	}
	key, rest = rest[:i], rest[i+1:]
	switch string(rest) {
	case "listen":
		return key, cfListen, nil, true
	case "poll":
		return key, cfPoll, nil, true
	case "sse":
		return key, cfSSE, nil, true
	case "stats":
		return key, cfStats, nil, true
	}
	if len(rest) > len("push/") && string(rest[:len("push/")]) == "push/" {
		return key, cfPush, rest[len("push/"):], true
	}
	return nil, 0, nil, false
}

func isAPIPath(p []byte) bool {
	switch string(p) {
	case "/write", "/read", "/read/ws", "/read/sse", "/healthz":
		return true
	}
	return false
}

func isGet(r *engine.Request) bool { return string(r.Method) == "GET" }

// Fail implements engine.Handler: transport-level errors get their JSON.
func (a *API) Fail(c engine.Conn, _ *engine.Request, status int, msg string) {
	a.replyError(c, nil, errorForStatus(status, msg))
}
