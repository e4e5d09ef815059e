// Package engine owns sockets, bytes and time: gnet v2 event loops (one per
// core), per-connection state, HTTP/1.1 request parsing with fasthttp's header
// type straight from gnet's inbound buffer, WebSocket handshake and framing
// with gobwas/ws, Server-Sent Event streams, the per-loop deadline sweep
// (header read deadline, idle keep-alive, long-poll holds, WebSocket pings,
// SSE heartbeats), caps on frames and unsent output, and graceful drain.
//
// It knows nothing of the two push APIs: every complete request goes to a
// Handler (implemented by package protocol), which answers through the Conn
// interface. The engine never starts a goroutine or a timer per connection:
// an idle connection is a small struct in its loop's table and holds no read
// buffer.
//
// Threading contract: every Handler method and every Conn method runs on the
// connection's own event-loop goroutine, except where a comment says "safe
// from any goroutine". Work from other goroutines (storage completions,
// fan-out) reaches a loop through Loops.Post or Loops.Broadcast.
//
// Handler.Closed is never called from inside another Handler call or
// from inside Conn.Send/Close: the engine queues it and runs it when the
// current entry into the loop (gnet callback, posted function, sweep)
// unwinds. A Conn can therefore be closed while the protocol iterates its
// subscribers without the subscriber list changing under it.
//
// Files: server.go (Server, gnet callbacks, loop discovery), loop.go
// (per-loop state, posted tasks, sweep), conn.go (Conn), serve.go (request
// dispatch), request_parser.go (HTTP/1.x on fasthttp's header type),
// response.go (response heads), websocket.go (handshake and frames),
// timer_wheel.go (per-loop deadlines), stats.go, sys_unix.go (file limit,
// listener addresses, half-close).
package engine
