package engine

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// refusalClass is a kind of client the engine turns away. Under a flood
// each would log once per event; refusalLog sums them instead.
type refusalClass uint8

const (
	refusedMaxConns       refusalClass = iota // over MaxConns: closed at accept
	refusedConnsPerIP                         // over MaxConnsPerIP: 429 (C-12)
	refusedFlood                              // pipelined bytes past MaxPipelined: 429
	refusedHeaderTooLarge                     // 431
	refusedBodyTooLarge                       // 413
	refusedMalformed                          // any other parse failure (400, 505)
	numRefusalClasses
)

// refusalNames name the classes in the log (and docs/config.md); what
// says what was refused, for "refused N connections: conns-per-ip".
var refusalNames = [numRefusalClasses]struct{ name, what string }{
	refusedMaxConns:       {"max-conns", "connections"},
	refusedConnsPerIP:     {"conns-per-ip", "connections"},
	refusedFlood:          {"pipelined-flood", "connections"},
	refusedHeaderTooLarge: {"header-too-large", "requests"},
	refusedBodyTooLarge:   {"body-too-large", "requests"},
	refusedMalformed:      {"malformed", "requests"},
}

// refusalClassOf maps a parse failure's status to its class.
func refusalClassOf(status int) refusalClass {
	switch status {
	case 431:
		return refusedHeaderTooLarge
	case 413:
		return refusedBodyTooLarge
	}
	return refusedMalformed
}

// refusalLogInterval is the least time between two lines of one class.
const refusalLogInterval = 10 * time.Second

// refusalLog logs refusals at most one line per class per interval, each
// with the count since the class's last line: the first refusal of a
// quiet class is logged at once (count 1), the ones that follow within
// the interval are summed into the next line, which the next refusal
// after the interval or flush (from the sweep ticker) writes. Nothing is
// lost: flushAll writes what is left when the server stops.
//
// note may be called from any loop and flush from the ticker goroutine at
// the same time: the counts are atomics, and whoever wins the CAS on a
// class's last-line time writes its line. Times are nanoseconds on the
// caller's clock (the Server's, or a test's), never read here.
type refusalLog struct {
	log      *slog.Logger
	interval int64
	classes  [numRefusalClasses]refusalCount
}

type refusalCount struct {
	pending atomic.Int64 // refusals not yet logged
	last    atomic.Int64 // when this class last logged; neverLogged first
}

// neverLogged is far enough in the past for any clock to be an interval
// beyond it, and far enough from MinInt64 that now-neverLogged does not
// overflow.
const neverLogged = -1 << 62

func newRefusalLog(log *slog.Logger, interval time.Duration) *refusalLog {
	r := &refusalLog{log: log, interval: int64(interval)}
	for i := range r.classes {
		r.classes[i].last.Store(neverLogged)
	}
	return r
}

// note counts one refusal of class c at now, and logs the class's line
// if its interval has passed. It does not block beyond the log write.
func (r *refusalLog) note(c refusalClass, now int64) {
	r.classes[c].pending.Add(1)
	r.emit(c, now, false)
}

// flush logs every class with refusals pending whose interval has passed.
func (r *refusalLog) flush(now int64) {
	for c := range numRefusalClasses {
		if r.classes[c].pending.Load() > 0 {
			r.emit(c, now, false)
		}
	}
}

// flushAll logs every class with refusals pending, interval or not: the
// server is stopping.
func (r *refusalLog) flushAll(now int64) {
	for c := range numRefusalClasses {
		if r.classes[c].pending.Load() > 0 {
			r.emit(c, now, true)
		}
	}
}

func (r *refusalLog) emit(c refusalClass, now int64, force bool) {
	rc := &r.classes[c]
	last := rc.last.Load()
	if !force && now-last < r.interval {
		return
	}
	if !rc.last.CompareAndSwap(last, now) {
		return // another goroutine writes this line
	}
	n := rc.pending.Swap(0)
	if n == 0 {
		return
	}
	names := refusalNames[c]
	what := names.what
	if n == 1 {
		what = what[:len(what)-1] // "1 connection"
	}
	r.log.Warn(fmt.Sprintf("refused %d %s: %s", n, what, names.name),
		"class", names.name, "count", n)
}

// refused counts one refusal for the log. Any goroutine.
func (s *Server) refused(c refusalClass) { s.refusals.note(c, s.clock()) }

// clock is the refusal log's time: nanoseconds since the Server was made.
func (s *Server) clock() int64 { return int64(time.Since(s.start)) }
