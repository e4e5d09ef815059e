// Package protocol implements the two push APIs, EZComet (channels read
// by tick) and Cometify (identifiers listened to by push id), as handlers
// over engine's Handler/Conn contract and persist's Store. It knows
// request parameters, validation, the error table, JSON and frame
// encodings, and which subscriber waits for which channel or topic; it
// knows nothing of sockets, buffers or event-loop mechanics.
//
// # Threading
//
// Three kinds of goroutine touch an API, and nothing slow runs on a loop:
//
//   - Event loops run every Handler method and every task posted to
//     them. Each loop owns its loopState (subscriber index, scratch), so
//     the index needs no lock.
//   - The store's syncer goroutine runs write and push completions,
//     then API.AfterBatch once per committed group (fanout.go). The
//     completions gather the group's answers per loop and its deliveries;
//     AfterBatch posts one task per loop with work in it, not one per
//     message. Wiring: install API.AfterBatch as
//     persist.Options.AfterBatch (until the store has called it once,
//     each completion is posted on its own).
//   - The reader pool (readers.go: Options.Readers goroutines, a queue of
//     Options.ReadQueue) runs every store read a subscriber needs:
//     EZComet first reads, catch-ups and poll answers, Cometify replays
//     and poll reads, /stats' channel walk. Results are posted back to
//     the connection's loop. A read that finds the queue full waits in
//     the pool's overflow (at most one per connection); only while the
//     store reports itself unavailable is it answered 503 "storage
//     unavailable" (a stream retries once drained). API.Close stops the
//     pool after the engine stopped.
//
// # The write contract
//
// A /write or push is checked on its loop (C-04's order), copied with
// the rooms of its encodings into one buffer owned by its op (writeOp,
// pushOp: recycled with their buffers once every loop ran the group that
// holds them, so a publish allocates nothing), and handed to the store with
// EZWriteTo or CFPushTo, which never block: a write the store cannot
// queue completes at once, on the loop, with a 503, posted immediately.
// Its completion runs once it is durable (C-09: "ok" means synced), in
// acceptance order; answers to one connection go out in that order and
// every loop runs the deliveries in commit order. A delivery's bytes for
// each transport (WebSocket frame, SSE event, poll answer) are built the
// first time a subscriber of that transport needs them, once, and shared
// by every loop (encoding.go); a Cometify SSE listener's own id: line is
// the only per-listener part.
//
// # Files
//
// Shared core: api.go (options, routing, Attach, Close), reply.go (JSON
// and JSONP answers, headers), form.go, jsonenc.go, validate.go,
// errors.go (the error table), transport.go (the subscriber transports:
// one event writer each for WebSocket, SSE and long-poll/JSONP, the
// subscribing prelude, poll timeouts), fanout.go, readers.go,
// encoding.go, ipcap.go (the per-(account, client IP) listener cap
// shared by both APIs, CF-L-08, C-12), revoke.go (A-04: closing what a
// changed account no longer admits), lifecycle.go (Expired, Closed,
// Drain, Drained), stats.go (/metrics), demo.go.
//
// EZComet: ezwrite.go (/write), ezread.go (/read, /read/ws, /read/sse and
// their store reads), ezindex.go (the channel index and deliveries).
// Cometify: cfpush.go (push), cflisten.go (/listen, /poll, /sse and their
// replays), cfindex.go (the topic index and deliveries), cfsign.go and
// cfvalidate.go (CF-P-03, CF-P-10, CF-L-06), cfstats.go.
//
// # Subscribers and backlogs
//
// Readers and listeners are a few words of state each (ezSub, cfSub; see
// TestSubscriberSizes), and delivery allocates nothing per subscriber.
// A subscriber is indexed from the moment its request passed its checks.
// While a store read for it is in flight it is "reading"; while its
// socket is backlogged (C-08) it is "paused": deliveries pass it by
// either way, and each loop records per channel (topic) the highest seq
// (id) it delivered. When its read is back, or its socket drained
// (Handler.Drained), the subscriber goes on from its cursor and reads on
// while it stands before that mark. The store has every message before
// its delivery runs, so nothing is lost, and cursors skip what a read
// already gave, so nothing is repeated. A subscriber closed, revoked or
// answered while its read is in flight is no longer its connection's
// Tag: the read's result is dropped. Replay windows stay anchored at the
// listener's admission. A long-poll answer is bounded in encoded bytes
// (Options.ReadBatchBytes) and in messages, and so is every store read
// (API.readLimit): a read never copies much more than one answer carries.
package protocol
