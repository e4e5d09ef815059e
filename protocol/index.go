package protocol

import "time"

// Index entries outlive their last reader for a while. A channel or
// topic read only by long-polls empties at every answer and fills again
// a round trip later, when the client polls again: dropping its entry
// each time cost every re-poll a new entry (its key, its list), and on a
// cluster's light node an UNSUB and a SUB on NATS (Options.Interest),
// the SUB from an unknown position. So an entry that empties stays,
// still receiving its channel's deliveries (its last keeps the highest
// seq delivered here, which a returning reader needs, see behind), and
// the loop's sweep drops it once it has stayed empty from one sweep to
// the next: between one and two Options.IndexSweep periods after it
// emptied.
//
// An account change drops the emptied entries of that account's
// channels and topics at once (revoke.go): a deleted and re-created
// account numbers its channels from 1 again, and a kept last would then
// stand above every new message.

// linger is an index entry's sweep state.
type linger struct {
	queued bool // in the loop's emptied list
	swept  bool // empty at the last sweep, and no reader came since
}

// emptiedEntry names an index entry that emptied: a channel's (cf
// false) or a topic's.
type emptiedEntry struct {
	key string
	cf  bool
}

// queueEmptied queues an entry that just emptied for the sweep.
func (ls *loopState) queueEmptied(l *linger, cf bool, key string) {
	if !l.queued {
		l.queued, l.swept = true, false
		if len(ls.emptied) == 0 {
			ls.toSweep.Store(true)
		}
		ls.emptied = append(ls.emptied, emptiedEntry{key: key, cf: cf})
	}
}

// sweep drops the entries that stayed empty since the last sweep, marks
// the ones that are empty now for the next, and trims the free lists
// (pool.go).
func (ls *loopState) sweep() {
	keep := ls.emptied[:0]
	for _, e := range ls.emptied {
		if ls.sweepEntry(e) {
			keep = append(keep, e)
		}
	}
	clear(ls.emptied[len(keep):])
	ls.emptied = keep
	if held := ls.free.trim(); len(keep) == 0 && !held {
		ls.toSweep.Store(false)
	}
}

// sweepEntry sweeps e's entry, reporting whether it stays queued.
func (ls *loopState) sweepEntry(e emptiedEntry) bool {
	var l *linger
	n := 0
	if e.cf {
		ts := ls.cfTopics[e.key]
		if ts == nil {
			return false // dropped by an account change
		}
		l, n = &ts.linger, len(ts.list)
	} else {
		cs := ls.subs[e.key]
		if cs == nil {
			return false
		}
		l, n = &cs.linger, len(cs.list)
	}
	switch {
	case n > 0:
		l.queued, l.swept = false, false
		return false
	case !l.swept:
		l.swept = true
		return true
	}
	ls.drop(e.cf, e.key)
	return false
}

// drop takes an empty entry out of the index and tells Interest.
func (ls *loopState) drop(cf bool, key string) {
	if cf {
		delete(ls.cfTopics, key)
	} else {
		delete(ls.subs, key)
	}
	ls.entries.Add(-1)
	if f := ls.api.opts.Interest; f != nil {
		f(cf, key, false)
	}
}

// sweeper posts its sweep every Options.IndexSweep, until Close, to
// each loop that has emptied entries or recycled objects: an idle loop
// is not woken.
type sweeper struct{ api *API }

// Run implements engine.Task.
func (t *sweeper) Run(loop int) { t.api.state[loop].sweep() }

func (a *API) startSweeper() {
	a.sweepStop = make(chan struct{})
	a.sweepDone = make(chan struct{})
	if a.opts.IndexSweep < 0 {
		close(a.sweepDone)
		return
	}
	go func() {
		defer close(a.sweepDone)
		tick := time.NewTicker(a.opts.IndexSweep)
		defer tick.Stop()
		task := &sweeper{api: a}
		for {
			select {
			case <-a.sweepStop:
				return
			case <-tick.C:
				for i, ls := range a.state {
					if ls.toSweep.Load() {
						a.loops.PostTask(i, task)
					}
				}
			}
		}
	}()
}
