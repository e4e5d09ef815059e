package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// Store is what the protocol needs from persistence; *persist.Store
// satisfies it.
type Store interface {
	AccountByKey(apiKey []byte) (persist.Account, bool)
	AccountByName(username []byte) (persist.Account, bool)
	EZWriteTo(w persist.EZWrite, done persist.WriteCompletion)
	EZRead(qname string, tick []byte, limit int) (persist.ReadResult, error)
	EZReadAfter(qname string, after uint64, limit int) (persist.ReadResult, error)
}

// Page is a static answer served at a fixed path (demo page, JS clients).
type Page struct {
	ContentType string
	Body        []byte
}

// Options configures the API. Zero fields take their documented defaults.
type Options struct {
	// Store is required.
	Store Store
	// ReadBatch caps messages per read answer (EZ-R-06). Default 1000.
	ReadBatch int
	// DefaultTimeout is a long-poll's wait when none is given. Default 30 s.
	DefaultTimeout time.Duration
	// MaxTimeout is the largest timeout a long-poll may ask. Default 120 s.
	MaxTimeout time.Duration
	// DrainRetry is the mean of the jittered "retry_ms" hint given to
	// waiting polls on a graceful stop. Default 2 s.
	DrainRetry time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed (C-07).
	TrustedProxies []netip.Prefix
	// Metrics appends the Prometheus text of /metrics. Default: only the
	// protocol's own series.
	Metrics func(dst []byte) []byte
	// Pages are static answers by exact path ("/" for the demo page).
	Pages map[string]Page
	// Log receives connection-level errors. Default slog.Default().
	Log *slog.Logger
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.ReadBatch <= 0 {
		o.ReadBatch = 1000
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
	// draining is set once Drain has been called: new requests get 503.
	draining atomic.Bool
}

// New builds an API. Attach must be called before the engine runs.
func New(opts Options) (*API, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &API{opts: opts, store: opts.Store}, nil
}

// Attach connects the API to the engine's loops; call once, before the
// engine serves its first request.
func (a *API) Attach(l engine.Loops) {
	a.loops = l
	a.state = make([]*loopState, l.NumLoops())
	for i := range a.state {
		a.state[i] = newLoopState(a)
	}
}

// Standard header blocks. API answers carry CORS and no-store (C-06).
var (
	hdrAPI       = []byte("Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n")
	hdrPreflight = []byte("Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n" +
		"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n" +
		"Access-Control-Allow-Headers: Content-Type, Authorization, Last-Event-ID\r\n" +
		"Access-Control-Max-Age: 86400\r\n")
	hdrSSE = []byte("Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\n")
)

const (
	ctJSON = "application/json; charset=utf-8"
	ctJS   = "application/javascript; charset=utf-8"
	ctSSE  = "text/event-stream; charset=utf-8"
)

var (
	bodyOK      = []byte(`{"code":"ok"}`)
	bodyHealthy = []byte(`{"code":"ok"}`)
)

// Serve implements engine.Handler.
func (a *API) Serve(c engine.Conn, r *engine.Request) {
	ls := a.state[c.Loop()]
	path := r.Path
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
		c.Reply(200, ctJSON, hdrAPI, bodyHealthy)
	case "/metrics":
		if !isGet(r) {
			a.replyError(c, nil, errMethod)
			return
		}
		ls.out = a.appendMetrics(ls.out[:0])
		c.Reply(200, "text/plain; version=0.0.4; charset=utf-8", nil, ls.out)
	default:
		if p, ok := a.opts.Pages[string(path)]; ok && isGet(r) {
			c.Reply(200, p.ContentType, []byte("Cache-Control: no-cache\r\n"), p.Body)
			return
		}
		a.replyError(c, nil, errNotFound)
	}
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

// replyError answers e as JSON, or as JSONP when callback is a valid
// callback name (C-06: JSONP applies to error answers too).
func (a *API) replyError(c engine.Conn, callback []byte, e *apiError) {
	a.stats.errors.Add(1)
	if callback == nil {
		c.Reply(e.status, ctJSON, hdrAPI, e.body)
		return
	}
	ls := a.state[c.Loop()]
	ls.jsonp = appendJSONP(ls.jsonp[:0], callback, e.body)
	c.Reply(e.status, ctJS, hdrAPI, ls.jsonp)
}

// reply answers a JSON body with status 200, or JSONP around it.
func (a *API) reply(c engine.Conn, callback, body []byte) {
	if callback == nil {
		c.Reply(200, ctJSON, hdrAPI, body)
		return
	}
	ls := a.state[c.Loop()]
	ls.jsonp = appendJSONP(ls.jsonp[:0], callback, body)
	c.Reply(200, ctJS, hdrAPI, ls.jsonp)
}

func appendJSONP(dst, callback, body []byte) []byte {
	dst = append(dst, callback...)
	dst = append(dst, '(')
	dst = append(dst, body...)
	return append(dst, ");"...)
}

// Expired implements engine.Handler: a long-poll's wait ended empty.
func (a *API) Expired(c engine.Conn) {
	if s, ok := c.Tag().(*ezSub); ok {
		s.ls.answerEmpty(s, 0)
	}
}

// Closed implements engine.Handler.
func (a *API) Closed(c engine.Conn) {
	if s, ok := c.Tag().(*ezSub); ok {
		s.ls.remove(s)
	}
}

// Drain implements engine.Handler: X-02's hints on a graceful stop.
func (a *API) Drain(c engine.Conn) {
	a.draining.Store(true)
	s, ok := c.Tag().(*ezSub)
	if !ok {
		return
	}
	switch s.kind {
	case subPoll:
		s.ls.answerEmpty(s, a.retryMillis())
	case subWS:
		s.ls.remove(s)
		c.CloseWebSocket(1001, "restart")
	case subSSE:
		s.ls.remove(s)
		ls := s.ls
		ls.out = append(ls.out[:0], "retry: "...)
		ls.out = strconv.AppendInt(ls.out, a.retryMillis(), 10)
		ls.out = append(ls.out, "\n\n"...)
		c.Send(ls.out)
		c.Close()
	}
}

// retryMillis is DrainRetry with full jitter (0.5x..1.5x), so clients of
// a stopping node do not all reconnect in the same instant.
func (a *API) retryMillis() int64 {
	base := a.opts.DrainRetry.Milliseconds()
	return base/2 + rand.Int64N(base+1)
}

// clientIP is the request's client address per C-07: the TCP peer, or,
// when the peer is a trusted proxy, the right-most X-Forwarded-For
// address that is not itself trusted.
func (a *API) clientIP(r *engine.Request) netip.Addr {
	ip := r.PeerAddr.Unmap()
	if !a.trusted(ip) || r.Header == nil {
		return ip
	}
	xff := r.Header.Peek("X-Forwarded-For")
	for len(xff) > 0 {
		var part []byte
		if i := bytes.LastIndexByte(xff, ','); i >= 0 {
			part, xff = xff[i+1:], xff[:i]
		} else {
			part, xff = xff, nil
		}
		addr, err := netip.ParseAddr(string(bytes.TrimSpace(part)))
		if err != nil {
			return ip
		}
		addr = addr.Unmap()
		if !a.trusted(addr) {
			return addr
		}
		ip = addr
	}
	return ip
}

func (a *API) trusted(ip netip.Addr) bool {
	for _, p := range a.opts.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
