// Package protocol implements the two push APIs, EZComet (channels read
// by tick) and Cometify (identifiers listened to by push id), as handlers
// over engine's Handler/Conn contract and persist's Store. It knows
// request parameters, validation, the error table, JSON and frame
// encodings, and which subscriber waits for which channel or topic; it
// knows nothing of sockets, buffers or event-loop mechanics.
//
// Threading: every Handler method runs on the connection's event loop.
// Storage completions arrive on persist's committer goroutine and are
// handed back to loops with engine.Loops.Post/Broadcast. Each loop owns
// its own subscriber index (loopState), so the index needs no lock: a
// write or push is encoded once, broadcast to every loop, and each loop
// wakes exactly the subscribers of that channel or topic.
//
// The listening side:
//
//   - ezread.go, subindex.go: EZComet readers (/read, /read/ws,
//     /read/sse) and the channel index; cflisten.go, cfindex.go: Cometify
//     listeners (/listen, /poll, /sse) and the topic index. Readers and
//     listeners are a few words of state each (ezSub, cfSub; see
//     TestSubscriberSizes), and delivery allocates nothing per
//     subscriber.
//   - Backlogs (C-08): a stream's catch-up or replay goes out while
//     Conn.Backlogged is false; then the subscriber pauses in the index,
//     deliveries pass it by, and Handler.Drained reads on from its cursor
//     (the store has every message before its delivery runs, so nothing
//     is lost or repeated). Replay windows stay anchored at the
//     listener's admission. A long-poll answer is bounded in encoded
//     bytes (Options.ReadBatchBytes) and in messages, and so is every
//     store read (API.readLimit): a read never copies much more than
//     one answer carries.
//   - ipcap.go: the per-(account, client IP) listener cap, shared by
//     Cometify listeners and EZComet readers (CF-L-08, C-12). The client
//     IP is Request.ClientIP, computed by the engine (C-07).
//   - revoke.go: API.AccountChanged closes what a changed account no
//     longer admits; readers and listeners record the account ID
//     and credential generations that admitted them.
//   - lifecycle.go: Expired, Closed, Drain and Drained.
package protocol
