package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanSub is one subscriber's accounting: which messages arrived, how many
// more than once, and how many out of order. The publisher sends in
// sequence over one connection, so each subscriber must see the sequence
// numbers (and Cometify push ids) strictly increase.
type fanSub struct {
	seen    []byte // bitmap over msgs
	n       int32  // msgs
	got     int32
	dup     int32
	order   int32 // fresh messages whose seq or id was not above the previous one's
	lastSeq int32
	lastID  int64
	since   int64 // the stream's resume point ({"since":"<id>:N"}, Cometify)
	prefix  int32 // messages 0..prefix-1 all arrived
	opened  bool  // the subscription was made (only these count as listeners)
}

func newFanSub(msgs int) *fanSub {
	return &fanSub{seen: make([]byte, (msgs+7)/8), n: int32(msgs), lastSeq: -1}
}

// mark records message seq with push id (-1: the API has no ids); it
// returns false for a duplicate or an out-of-range seq (counted as a
// duplicate only when in range). A fresh message that does not follow the
// previous one in seq and id counts once in order.
func (s *fanSub) mark(seq int, id int64) bool {
	if seq < 0 || seq >= int(s.n) {
		return false
	}
	bit := byte(1) << (seq % 8)
	if s.seen[seq/8]&bit != 0 {
		s.dup++
		return false
	}
	s.seen[seq/8] |= bit
	s.got++
	for s.prefix < s.n && s.seen[s.prefix/8]&(1<<(s.prefix%8)) != 0 {
		s.prefix++
	}
	if int32(seq) <= s.lastSeq || (id >= 0 && id <= s.lastID) {
		s.order++
	}
	s.lastSeq = max(s.lastSeq, int32(seq))
	s.lastID = max(s.lastID, id)
	return true
}

// resumeID is the id a Cometify listener resumes from: its last push, or
// the stream's resume point when that is higher (none arrived yet).
func (s *fanSub) resumeID() int64 { return max(s.lastID, s.since) }

// missing is how many of the first n messages never arrived.
func (s *fanSub) missing(n int) int {
	m := 0
	for i := 0; i < n && i < int(s.n); i++ {
		if s.seen[i/8]&(1<<(i%8)) == 0 {
			m++
		}
	}
	return m
}

// fanState is a fan-out client process's shared state.
type fanState struct {
	kind  serverKind
	msgs  int
	mu    [16]sync.Mutex
	hists [16]Histogram
	subs  []*fanSub
	bad   atomic.Int64
	first atomic.Int64
	last  atomic.Int64
}

// onFrame accounts one data frame of subscriber i; it returns how many
// deliveries (good, duplicate or bad) the frame held, not counting the
// server's own messages to ignore.
func (f *fanState) onFrame(i int, frame []byte) int64 {
	return f.onFrameAt(i, frame, time.Now().UnixNano())
}

// onFrameAt is onFrame for a frame received at now (UnixNano).
func (f *fanState) onFrameAt(i int, frame []byte, now int64) int64 {
	var n int64
	for len(frame) > 0 {
		var p []byte
		var id int64
		var ignore bool
		msg := frame
		p, id, ignore, frame = f.kind.next(frame)
		if ignore {
			if r, ok := f.kind.(resumer); ok {
				if v, ok := r.resumePoint(msg); ok {
					k := i % len(f.mu)
					f.mu[k].Lock()
					f.subs[i].since = max(f.subs[i].since, v)
					f.mu[k].Unlock()
				}
			}
			continue
		}
		n++
		f.message(i, p, id, now)
	}
	return n
}

// message accounts one delivered message (payload, push id) of subscriber i.
func (f *fanState) message(i int, p []byte, id int64, now int64) {
	seq, ts, ok := parseFanPayload(p)
	if !ok || seq >= f.msgs {
		f.bad.Add(1)
		return
	}
	k := i % len(f.mu)
	f.mu[k].Lock()
	fresh := f.subs[i].mark(seq, id)
	if fresh {
		f.hists[k].Record(now - ts)
	}
	f.mu[k].Unlock()
	if fresh {
		f.first.CompareAndSwap(0, now)
		for {
			l := f.last.Load()
			if now <= l || f.last.CompareAndSwap(l, now) {
				break
			}
		}
	}
}

// resume is subscriber i's resume point (Cometify id form).
func (f *fanState) resume(i int) int64 {
	k := i % len(f.mu)
	f.mu[k].Lock()
	defer f.mu[k].Unlock()
	return f.subs[i].resumeID()
}

// caught counts the opened subscribers that got every one of the first n
// messages.
func (f *fanState) caught(n int) int {
	c := 0
	for k := range f.mu {
		f.mu[k].Lock()
		for i := k; i < len(f.subs); i += len(f.mu) {
			if s := f.subs[i]; s.opened && int(s.prefix) >= n {
				c++
			}
		}
		f.mu[k].Unlock()
	}
	return c
}

// opened marks subscriber i as listening.
func (f *fanState) opened(i int) {
	k := i % len(f.mu)
	f.mu[k].Lock()
	f.subs[i].opened = true
	f.mu[k].Unlock()
}

func (f *fanState) report(closed int64) string {
	var h Histogram
	var got, dup, miss, order, opened int64
	lmin, lmax := int64(-1), int64(0)
	missBySeq := make([]uint64, f.msgs)
	for k := range f.mu {
		f.mu[k].Lock()
		h.Merge(&f.hists[k])
		f.mu[k].Unlock()
	}
	for i, s := range f.subs {
		k := i % len(f.mu)
		f.mu[k].Lock()
		got += int64(s.got)
		dup += int64(s.dup)
		miss += int64(s.missing(f.msgs))
		order += int64(s.order)
		if s.opened {
			for q := range missBySeq {
				if s.seen[q/8]&(1<<(q%8)) == 0 {
					missBySeq[q]++
				}
			}
			opened++
			if lmin < 0 || int64(s.got) < lmin {
				lmin = int64(s.got)
			}
			lmax = max(lmax, int64(s.got))
		}
		f.mu[k].Unlock()
	}
	var mseq strings.Builder
	encodeCounts(&mseq, missBySeq)
	return fmt.Sprintf("fan got=%d dup=%d missing=%d bad=%d closed=%d order=%d opened=%d lmin=%d lmax=%d first=%d last=%d\nmseq %s\nhist %s",
		got, dup, miss, f.bad.Load(), closed, order, opened, lmin, lmax, f.first.Load(), f.last.Load(), mseq.String(), encodeHist(&h))
}

// cmdFanClient is the hidden "bench fanclient": it opens --open WebSocket
// subscribers on one channel and accounts every message. stdout: "ready",
// stat lines as "bench client"; on "quit" (or end of stdin) a "fan …" and a
// "hist …" line, then it exits.
func cmdFanClient(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench fanclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c clientConfig
	clientFlags(fs, &c)
	fs.IntVar(&c.FirstIndex, "first-index", 0, "global index of the first connection (source addresses)")
	open := fs.Int("open", 0, "subscribers to open")
	msgs := fs.Int("msgs", 0, "messages expected")
	c.readerConfig.clientFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	c.Mode, c.Channels = "ws", 1
	if err := c.validate(); err != nil || *msgs < 1 {
		fmt.Fprintln(stderr, "bench fanclient: bad flags", err)
		return 2
	}
	addr, host, _ := hostPort(c.Target)
	ctx, cancel := context.WithTimeout(context.Background(), c.MaxLife)
	defer cancel()
	f := &fanState{kind: c.kind(), msgs: *msgs, subs: make([]*fanSub, *open)}
	for i := range f.subs {
		f.subs[i] = newFanSub(*msgs)
	}
	var st clientStats
	ep := c.readerConfig.epoll(epollOptions{OnData: func(c *epConn, p []byte, now int64) int64 {
		return f.onFrameAt(c.idx, p, now)
	}}, &st, stderr)
	sem := make(chan struct{}, c.DialConc)
	for i := 0; i < *open; i++ {
		go func(i int) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			conn, br, err := openSub(ctx, &c, addr, host, c.FirstIndex+i, "")
			<-sem
			if err != nil {
				st.failed.Add(1)
				return
			}
			st.open.Add(1)
			f.opened(i)
			if ep != nil {
				if err := ep.add(i, conn, br); err != nil {
					st.open.Add(-1)
					st.closed.Add(1)
				}
				return
			}
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			defer stop()
			wsHoldFunc(conn, br, &st, func(b []byte) int64 { return f.onFrame(i, b) })
			conn.Close()
			st.open.Add(-1)
			st.closed.Add(1)
		}(i)
	}
	fmt.Fprintln(stdout, "ready")
	// The storm (bench storm): "storm" resets every held subscriber at
	// once and reconnects each at once with the id-form LIST of the last
	// push it got (CF-L-05); "catch N" asks to count the subscribers that
	// got all of the first N messages (stat caught=).
	var sm stormState
	quit := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			cmd := strings.TrimSpace(sc.Text())
			if cmd == "quit" {
				break
			}
			if _, ok := c.kind().(resumer); ok && cmd == "storm" && ep != nil {
				go sm.storm(ctx, ep, f, &st, func(i int, resume string) (net.Conn, *bufio.Reader, error) {
					sem <- struct{}{}
					defer func() { <-sem }()
					return openSub(ctx, &c, addr, host, c.FirstIndex+i, resume)
				}, nchanID(c.QName)+"0")
			}
			if v, ok := strings.CutPrefix(cmd, "catch "); ok {
				if n, err := strconv.Atoi(v); err == nil {
					sm.catch.Store(int64(n))
				}
			}
		}
		close(quit)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	line := func() string {
		l := st.line(*open)
		if sm.started.Load() {
			l += sm.line(f)
		}
		return l
	}
	for {
		select {
		case <-quit:
			fmt.Fprintln(stdout, line())
			fmt.Fprintln(stdout, f.report(st.closed.Load()))
			return 0
		case <-ctx.Done():
			fmt.Fprintln(stdout, "exit max-life")
			return 0
		case <-tick.C:
			if l := line(); l != last {
				fmt.Fprintln(stdout, l)
				last = l
			}
		}
	}
}

// stormState is a fan-out client process's side of "bench storm".
type stormState struct {
	started     atomic.Bool
	dropped     atomic.Int64 // subscribers reset
	reconnected atomic.Int64 // of those, open again
	gaveUp      atomic.Int64 // could not reconnect
	retries     atomic.Int64 // reconnect attempts refused or failed, then retried
	catch       atomic.Int64 // count caught= against the first catch messages (0: not asked)
}

// storm resets every subscriber and reconnects them all at once, each
// resuming from its last push id (name:<id>).
func (sm *stormState) storm(ctx context.Context, ep *epollSubs, f *fanState, st *clientStats,
	open func(i int, resume string) (net.Conn, *bufio.Reader, error), name string) {
	idx := ep.reset()
	sm.dropped.Add(int64(len(idx)))
	// Only now may the stat line carry dropped=: the parent takes a
	// process's first dropped= as its whole reset, and a line printed
	// between the two would tell it 0 (TestStormEndToEnd, once in CI:
	// 25 of 40 counted).
	sm.started.Store(true)
	for _, i := range idx {
		go func() {
			// A refusal (say the per-IP cap, while the server has not yet
			// seen the reset of the old connection) is retried.
			for attempt := 0; ctx.Err() == nil; attempt++ {
				conn, br, err := open(i, name+":"+strconv.FormatInt(f.resume(i), 10))
				if err == nil {
					st.open.Add(1)
					if ep.add(i, conn, br) == nil {
						sm.reconnected.Add(1)
						return
					}
					st.open.Add(-1)
				}
				if attempt == 100 {
					sm.gaveUp.Add(1)
					return
				}
				sm.retries.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
}

func (sm *stormState) line(f *fanState) string {
	caught := -1
	if n := sm.catch.Load(); n > 0 {
		caught = f.caught(int(n))
	}
	return fmt.Sprintf(" dropped=%d reconnected=%d gaveup=%d retries=%d caught=%d",
		sm.dropped.Load(), sm.reconnected.Load(), sm.gaveUp.Load(), sm.retries.Load(), caught)
}
