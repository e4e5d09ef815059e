package protocol

import "github.com/halleypush/halley/engine"

// Pipelining (issue 16): a /write or a Cometify push defers its answer
// (newWriteOp, newPushOp) until the store has it on disk, and the engine
// serves the connection's next pipelined writes and pushes meanwhile, so
// they reach the store in one commit group instead of one per fsync.
// Answers still leave in request order (the engine holds a later one
// until those before it are out), and `ok` still means synced (C-09).

// Pipelinable implements engine.Pipeliner: writes and pushes (whatever
// their fate: an error is answered at once, in its place) may be served
// behind answers still outstanding. Everything else (reads that hold or
// upgrade, stats, pages, the demo) waits until they are written, as it
// did before.
func (a *API) Pipelinable(r *engine.Request) bool {
	path := r.Path
	if a.opts.Demo.Account != "" && isDemoPath(path) {
		return false
	}
	if string(path) == "/write" {
		return true
	}
	_, action, _, ok := splitCFPath(path)
	return ok && action == cfPush && string(r.Method) != "OPTIONS"
}

// replyDeferredError answers a deferred write or push with e (C-03).
func (a *API) replyDeferredError(d engine.Deferred, e *apiError) {
	a.stats.errors.Add(1)
	d.Reply(e.status, ctJSON, hdrAPI, e.body)
}
