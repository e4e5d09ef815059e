// Package engine owns sockets, bytes and time: gnet v2 event loops (one per
// core), per-connection state, HTTP/1.1 request parsing with fasthttp's header
// type straight from gnet's inbound buffer, WebSocket handshake and framing
// with gobwas/ws, Server-Sent Event streams, the per-loop deadline sweep
// (header read deadline, idle keep-alive, long-poll holds, WebSocket pings,
// SSE heartbeats), caps on frames, pipelined input and unsent output, the
// client address (C-07) and its connection count (C-12), and graceful
// drain.
//
// It knows nothing of the two push APIs: every complete request goes to a
// Handler (implemented by package protocol), which answers through the Conn
// interface. The engine never starts a goroutine or a timer per connection:
// an idle connection is a small struct in its loop's table and holds no read
// buffer; what a connection in progress must remember between reads (a
// chunked body's framing, a WebSocket message's fragmentation and UTF-8
// state) is a few integers in that struct, never a copy of the bytes,
// which stay in gnet's inbound buffer.
//
// Threading contract: every Handler method and every Conn method runs on the
// connection's own event-loop goroutine, except where a comment says "safe
// from any goroutine". Work from other goroutines (storage completions,
// fan-out) reaches a loop through Loops.Post or Loops.Broadcast. The
// per-IP connection table is the only state loops share; it is touched at
// open, close and when a trusted proxy's client changes, under sharded
// mutexes.
//
// Handler.Closed and Handler.Drained are never called from inside another
// Handler call or from inside a Conn method: the engine queues them and
// runs them when the current entry into the loop (gnet callback, posted
// function, sweep) unwinds. A Conn can therefore be closed while the
// protocol iterates its subscribers without the subscriber list changing
// under it. Drained is never called for a connection that closed.
//
// A posted task's sends are gathered and written at the batch's end, one
// write per connection (gather.go). Answers leave first, and a long
// flush (a fan-out to thousands) goes in turns with the loop's other
// work between them, so one large fan-out does not hold every other
// connection of its loop, or the publishes behind it, for its whole
// length.
//
// Memory per connection is bounded whatever the client does (C-08, see
// flow_control.go): pipelined input waits in gnet's buffer up to about one
// request, then the engine stops reading the socket (readpause_linux.go
// switches its epoll interest, as gnet v2.10 has no API for it); unsent
// output stops the parsing of pipelined requests past an eighth of
// MaxOutbound (so that queued answers stay within it), cuts a live stream
// past it, and paces a backlog through Conn.Backlogged,
// Conn.WhenDrained and Handler.Drained.
//
// A handler may answer a request later (Conn.Defer) while the engine
// serves the connection's next pipelined requests, those the Handler's
// Pipelinable allows (pipeline.go): answers leave in request order, a
// later one held until those before it are written, and held bytes count
// as unsent output.
//
// Files: server.go (Server, gnet callbacks, loop discovery, tick), loop.go
// (per-loop state, posted tasks, sweep, open and close), conn.go (Conn),
// serve.go (request dispatch), pipeline.go (deferred answers, in
// order), request_parser.go (HTTP/1.x on fasthttp's
// header type, RFC 9112 framing, incremental chunked bodies),
// client_ip.go (C-07), client_counts.go (C-12), flow_control.go (C-08),
// readpause_linux.go and readpause_other.go (pausing reads), response.go
// (response heads), websocket.go (handshake and frames, RFC 6455 checks),
// utf8_stream.go (streamed UTF-8 validation), gather.go (batched sends, flushed in turns),
// timer_wheel.go (per-loop deadlines), stats.go, sys_unix.go (file limit,
// listener addresses, half-close).
package engine
