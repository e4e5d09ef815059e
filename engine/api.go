package engine

import (
	"errors"
	"net/netip"
	"time"
)

// Handler receives complete requests and connection events. It is
// implemented by package protocol. All methods are called on the
// connection's event-loop goroutine and must not block.
type Handler interface {
	// Serve handles one complete request. r and everything it points to are
	// valid only during the call (they alias the loop's parse buffers).
	// The handler must answer exactly once, now or later, through one of
	// c.Reply, c.Defer (then the Deferred's Reply), c.Hold (then Reply
	// when woken or on Expired), c.UpgradeWebSocket or c.StartStream.
	// While a request is unanswered the engine parses no further
	// pipelined request from c, and past about one request of buffered
	// bytes stops reading c's socket until the answer (C-08); after
	// c.Defer it goes on with the requests the Handler's Pipelinable
	// allows (see Pipeliner), answers leaving in request order.
	Serve(c Conn, r *Request)

	// Fail renders an error for a request the engine could not hand to
	// Serve: unparsable request line or headers, or framing that RFC 9112
	// refuses (400), HTTP version other than 1.0/1.1 (505), headers too
	// large (431), body too large (413), header read deadline passed
	// (408), too many connections from the client's address (429,
	// FailTooManyConns, C-12), pipelined bytes dropped where reads cannot
	// pause (429). r holds whatever was parsed (Method/Path may be empty).
	// The handler must call c.Reply once; the engine closes the connection
	// after that reply is flushed. Fail is called from inside Conn.Reply
	// for the 429 of dropped pipelined bytes.
	Fail(c Conn, r *Request, status int, msg string)

	// Expired is called when a Hold's deadline passes before the handler
	// answered. The handler must Reply.
	Expired(c Conn)

	// Drained is called once after Conn.WhenDrained, when the
	// connection's unsent output has fallen to Options.BacklogBytes/2 or
	// below: a handler sending a backlog (catch-up, replay) sends its
	// next part. Not called for a connection that closed (or began
	// closing) meanwhile, and, like Closed, never from inside another
	// Handler call: the engine looks at the waiting connections when an
	// entry into the loop ends, and every few milliseconds while any
	// waits.
	Drained(c Conn)

	// Closed is called once when a connection goes away for any reason
	// (peer close, reset, deadline, slow-consumer cut, drain), for every
	// connection whose Tag is non-nil: as soon as it starts closing (its
	// last output flushing, its write side shut while the peer's FIN is
	// awaited), not when the socket is finally gone, so what the Handler
	// holds for it (a listener slot) is freed at once. After Closed, Conn
	// methods are no-ops.
	Closed(c Conn)

	// Drain is called once per connection with a non-nil Tag when the
	// server starts a graceful stop (SIGTERM): the handler answers waiting
	// long-polls and closes streams (WebSocket 1001 "restart"). The engine
	// closes the remaining connections once their output is flushed.
	Drain(c Conn)
}

// Request is one parsed HTTP/1.x request. All byte slices alias engine
// buffers and are valid only during Handler.Serve / Handler.Fail.
type Request struct {
	Method []byte // "GET", "POST", "OPTIONS", ...
	// Path is the path of the request target, not percent-decoded and
	// without the query. An absolute-form target ("http://host/p?q") is
	// reduced to its path ("/p").
	Path  []byte
	Query []byte // raw query string, without the '?'; nil when absent
	Body  []byte // the whole body (Content-Length or chunked, decoded)
	// Header looks up a request header by name in any case; nil if absent.
	Header HeaderPeeker
	// PeerAddr is the TCP peer's address.
	PeerAddr netip.Addr
	// ClientIP is the client's address per C-07: PeerAddr, or, when the
	// peer is inside Options.TrustedProxies, the right-most address of
	// the X-Forwarded-For lines (read as one list; when there is none,
	// of Forwarded's for= parameters) that is not itself trusted; an
	// entry that does not parse ends that walk at the last trusted hop.
	// Unmapped (IPv4 as 4 bytes). Set for Serve and for Fail alike
	// (PeerAddr when the headers could not be read).
	ClientIP netip.Addr
	// ViaTrustedProxy is true when the peer is inside
	// Options.TrustedProxies, i.e. when forwarding headers were read.
	ViaTrustedProxy bool
	// HTTP10 is true for an HTTP/1.0 request.
	HTTP10 bool
}

// HeaderPeeker is satisfied by *fasthttp.RequestHeader.
type HeaderPeeker interface {
	Peek(name string) []byte
	// PeekAll returns every value of the header name, one per line, in
	// order (nil if absent).
	PeekAll(name string) [][]byte
}

// Conn is one client connection, seen from the protocol. Methods run on
// the connection's loop goroutine only, unless marked otherwise. After the
// connection has gone (Closed was called, or would have been), every
// method is a harmless no-op, so a handle kept past the connection's life
// is safe to use on its loop.
type Conn interface {
	// Reply writes one complete response: status line, Content-Type,
	// Content-Length, Connection and Date headers, then extraHeaders
	// (preformatted "Name: value\r\n" lines, may be nil), then body.
	// The engine copies what it needs; the caller keeps ownership of the
	// slices. After Reply the connection reads its next pipelined request,
	// or closes when the request asked for Connection: close, was
	// HTTP/1.0 without keep-alive, or went through Handler.Fail.
	Reply(status int, contentType string, extraHeaders, body []byte)

	// Defer promises the answer to the request being served for later,
	// through the returned Deferred (on this loop), and lets the engine
	// serve the connection's next pipelined requests meanwhile when the
	// Handler's Pipelinable allows them; answers are written in request
	// order, a later one held (copied, counted toward the output bound of
	// C-08) until those before it are. Only during Serve; otherwise it
	// returns the zero Deferred, whose Reply does nothing. When the
	// connection goes first, the Deferred's Reply does nothing.
	Defer() Deferred

	// Hold parks the current request (long-poll) for at most d. The handler
	// later calls Reply itself, or Handler.Expired runs at the deadline.
	// A peer that closes meanwhile produces Handler.Closed.
	Hold(d time.Duration)

	// UpgradeWebSocket completes the RFC 6455 handshake for r (the request
	// being served) and turns the connection into a WebSocket. It returns
	// an error, having written nothing, when r is not a valid WebSocket
	// upgrade; the handler then Replies: 426 with "Sec-WebSocket-Version:
	// 13" for ErrUpgradeVersion, 400 for ErrBadUpgrade (C-13). From then on the engine
	// answers pings, enforces the client frame cap (close 1009), holds
	// client frames to RFC 6455 (masking, opcodes, fragmentation and
	// control frames: 1002; UTF-8 of text and close reasons: 1007; close
	// codes: 1002; a valid close is echoed with its code) and sends a
	// ping every Options.PingInterval; the data of text or binary frames
	// from the client is otherwise ignored.
	UpgradeWebSocket(r *Request, extraHeaders []byte) error

	// StartStream writes a 200 response head with the given Content-Type
	// and extraHeaders and no Content-Length (the connection closes at the
	// end of the stream), for Server-Sent Events. The engine sends
	// Options.StreamHeartbeat bytes every Options.StreamHeartbeatInterval.
	StartStream(contentType string, extraHeaders []byte)

	// Send writes preencoded bytes to a WebSocket or stream connection: a
	// whole WebSocket frame (see AppendTextFrame) or SSE event bytes. The
	// same slice may be sent to many connections; the engine does not
	// retain it after Send returns. When the connection's unsent output
	// would exceed Options.MaxOutbound the connection is cut as a slow
	// consumer (Handler.Closed follows) and Send returns false.
	Send(b []byte) bool

	// Backlogged reports whether the connection's unsent output is at or
	// above Options.BacklogBytes. A handler sending a backlog (EZComet
	// catch-up, Cometify replay) stops sending when it is true, calls
	// WhenDrained and goes on in Handler.Drained: a reader that reads is
	// never cut for the size of its backlog (C-08).
	Backlogged() bool

	// WhenDrained asks for one Handler.Drained(c) call once the unsent
	// output has fallen to Options.BacklogBytes/2 or below (soon, from a
	// later loop entry, when it already has). Calls before that one is
	// delivered coalesce.
	WhenDrained()

	// CloseWebSocket sends a close frame with code and reason, then closes
	// once it is flushed.
	CloseWebSocket(code uint16, reason string)

	// Close closes the connection after its pending output is flushed.
	Close()

	// Beacon lets the peer's application check that a WebSocket is alive
	// (browsers see no pings): a text frame "ping" from the client is
	// answered with Options.WSBeacon. Other client data frames stay
	// ignored, and nothing is sent unasked. Call it after UpgradeWebSocket.
	Beacon()

	// Loop is the index of the event loop that owns the connection, for
	// Loops.Post. Safe from any goroutine.
	Loop() int

	// ID is unique for the process lifetime; safe from any goroutine.
	ID() uint64

	// Tag and SetTag hold the protocol's per-connection state (nil by
	// default). The engine calls Handler.Closed and Handler.Drain only for
	// connections with a non-nil Tag.
	Tag() any
	SetTag(t any)

	// Alive reports whether the connection is still open.
	Alive() bool
}

// Errors of Conn.UpgradeWebSocket (C-13).
var (
	// ErrBadUpgrade: not a valid RFC 6455 opening handshake (400).
	ErrBadUpgrade = errors.New("engine: not a valid WebSocket upgrade request")
	// ErrUpgradeVersion: Sec-WebSocket-Version is not 13 (426, with
	// "Sec-WebSocket-Version: 13").
	ErrUpgradeVersion = errors.New("engine: unsupported WebSocket version")
)

// Loops lets other goroutines run code on event loops.
type Loops interface {
	// NumLoops is the number of event loops; loop indexes are 0..n-1.
	NumLoops() int
	// Post runs fn on loop i's goroutine soon. Safe from any goroutine;
	// functions posted from one goroutine to one loop run in order.
	Post(i int, fn func())
	// Broadcast runs fn(i) on every loop i's goroutine. Safe from any
	// goroutine; order as for Post.
	Broadcast(fn func(loop int))
	// PostTask and BroadcastTask are Post and Broadcast for a Task: a
	// caller that keeps one object per unit of work posts it without
	// allocating a closure. Same ordering as Post.
	PostTask(i int, t Task)
	BroadcastTask(t Task)
}

// Task is work run on an event loop; Run gets the loop's index.
type Task interface {
	Run(loop int)
}
