// Package protocol implements the two push APIs (EZComet now, Cometify
// next) as handlers over engine's Handler/Conn contract and persist's
// Store. It knows request parameters, validation, the error table, JSON
// and frame encodings, and which subscriber waits for which channel; it
// knows nothing of sockets, buffers or event-loop mechanics.
//
// Threading: every Handler method runs on the connection's event loop.
// Storage completions arrive on persist's committer goroutine and are
// handed back to loops with engine.Loops.Post/Broadcast. Each loop owns
// its own subscriber index (loopState), so the index needs no lock: a
// write is encoded once, broadcast to every loop, and each loop wakes
// exactly the subscribers of that channel.
package protocol
