package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// C-08's output bound, seen from clients that read: a pipeline whose
// answers are read is never cut, a /read answer is bounded in bytes, and a
// backlog bigger than the bound reaches a reader that reads it slowly. And
// from one that does not: a client that pipelines /reads and reads nothing
// costs the server bounded memory and does not stop it serving others.

func checkOutbound(t *caseT) {
	t.parallel(
		func() { pipelinedPushes(t) },
		func() { readBatchBytes(t) },
		func() { backlogEZ(t) },
		func() { backlogCF(t) },
	)
}

// pipelinedPushes sends 225 pushes of 64 KiB on one connection as fast as
// the server takes them, reading the answers meanwhile: all must be ok,
// in order; a server that cuts the connection for the bytes pipelined
// behind a pending request loses answers to pushes it may have accepted.
func pipelinedPushes(t *caseT) {
	const n, size = 225, 65536
	a := t.cfg.Account
	x := ident()
	text := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("p", size-6) }
	if req := len(pushForm(a, x, text(0), "0", "1")); req > t.cfg.MaxBodyBytes {
		t.Notef("225 pipelined 64 KiB pushes: a push body of %d bytes is over --max-body-bytes %d", req, t.cfg.MaxBodyBytes)
		return
	}
	w := t.dial()
	go func() {
		for i := range n {
			if w.trySend(t.request("POST", pushPath(a, x), pushForm(a, x, text(i), "0", strconv.Itoa(i+1)))) != nil {
				return // the reads below say what the server did
			}
		}
	}()
	for i := range n {
		r, err := w.readErr("POST", 30*time.Second)
		if err != nil {
			t.Fatalf("%d pipelined 64 KiB pushes on one connection whose answers are read: answer %d: %v", n, i+1, err)
		}
		t.pushAnswer(r, fmt.Sprintf("pipelined 64 KiB push %d of %d", i+1, n), strconv.Itoa(i+1))
	}
	w.close()
	p := t.cfPoll(a, idList(x, n-1), 0)
	if len(p.items) != 1 || p.items[0].kind != cfPush || p.items[0].id != n || p.items[0].data != text(n-1) {
		t.Fatalf("after %d pipelined pushes, resuming from id %d: want push %d, got %v", n, n-1, n, p.items)
	}
	if p := t.cfPoll(a, idList(x+"a", 0), 0); len(p.items) != 0 {
		t.Fatalf("the identifier %sa, next to the one pushed to, replays %v", x, p.items)
	}
}

// controlText is a message of size bytes of control characters (U+0001 to
// U+001F, valid UTF-8, no NUL), each of which JSON encodes in 6 bytes; it
// starts with i so that every message differs.
func controlText(i, size int) string {
	b := []byte(fmt.Sprintf("%05d", i))
	for len(b) < size {
		b = append(b, byte(1+len(b)%31))
	}
	return string(b)
}

// readBatchBytes fills a channel with messages of control characters (a
// 4 KiB message is a 24 KiB answer) and reads it from the start: every
// answer of more than one message stays within --read-batch-bytes, and
// following the last tick gets every message exactly once, in order.
func readBatchBytes(t *caseT) {
	limit := t.cfg.Wire.ReadBatchBytes
	n := min(t.cfg.EZMaxQueue, 1000)
	q := t.qname()
	msgs := make([]string, n)
	ticks := make([]string, n)
	for i := range n {
		msgs[i], ticks[i] = controlText(i, 4096), fmt.Sprintf("rb%d", i)
	}
	t.writeMsg(q+"a", controlText(n, 4096), "") // a neighbour, never read here
	start := t.writeMany(q, msgs, ticks)
	var got []ezItem
	tick, answers, biggest := "", 0, 0
	for range n + 1 {
		r := t.doWithin(defaultWait, "GET", readPath("/read", q, tick, 0), "")
		a := t.decodePoll(r, 0)
		if len(a.messages) == 0 {
			break
		}
		answers++
		biggest = max(biggest, len(r.body))
		// A server may bound the messages it adds and then wrap them:
		// allow the wrapper's few bytes beyond the bound.
		if len(a.messages) > 1 && len(r.body) > limit+1024 {
			t.Fatalf("a /read answer of %d messages is %d bytes; --read-batch-bytes is %d", len(a.messages), len(r.body), limit)
		}
		got = append(got, a.messages...)
		tick = a.messages[len(a.messages)-1].tick
	}
	if err := sameItems(got, msgs, ticks); err != nil {
		t.skipIfAged(start, fmt.Errorf("reading %d messages of control characters from the start, %d answers: %v", n, answers, err))
	}
	if answers < 2 {
		t.Notef("/read answers bounded in bytes: %d messages of 4 KiB control characters fit one answer of %d bytes within --read-batch-bytes %d (raise --ez-max-queue or lower --read-batch-bytes)", n, biggest, limit)
	}
}

// slowReader hands out at most 4 KiB per Read and pauses before each, like
// a reader on a slow link.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 4096)])
}

// slowWS opens a WebSocket to target on a socket whose receive buffer is
// set to 4 KiB before connecting, and reads it slowly.
func (t *caseT) slowWS(target string) *wsConn {
	wc, err := t.dialErr(4096)
	if err != nil {
		t.Fatalf("connect %s: %v", t.cfg.hostPort(), err)
	}
	c, r := t.openWSOn(wc, target)
	if c == nil {
		t.Fatalf("GET %s: want a WebSocket upgrade, got %s", target, r)
	}
	c.w.br = bufio.NewReaderSize(slowReader{c.w.br}, 4096)
	return c
}

// backlogEZ: an EZComet WebSocket reader of a channel with a 1000-message
// backlog of 4 KB messages reads all of them, in order, through a 4 KB
// receive window, and nothing of a neighbouring channel. When plain text
// would not make the backlog bigger than the output bound plus what the
// kernel's buffers hold, the messages are control characters, 6 bytes
// each once encoded.
func backlogEZ(t *caseT) {
	n := min(1000, t.cfg.EZMaxQueue)
	need := t.cfg.MaxUnsentBytes + kernelSendBufferMax() + 1<<20
	if n < 1000 {
		t.Notef("a 1000-message EZComet backlog: --ez-max-queue %d keeps %d", t.cfg.EZMaxQueue, n)
	}
	body := func(i int) string { return fmt.Sprintf("%05d", i) + strings.Repeat("b", 4096-5) }
	encoded := n * 4096
	if encoded < need {
		body = func(i int) string { return controlText(i, 4096) }
		encoded *= 6
	}
	if encoded < need {
		t.Notef("an EZComet backlog past --max-unsent-bytes: %d messages of 4 KB are %d KiB encoded, not over the bound and the kernel's buffers (%d KiB)", n, encoded>>10, need>>10)
	}
	q := t.qname()
	msgs := make([]string, n)
	ticks := make([]string, n)
	for i := range n {
		msgs[i], ticks[i] = body(i), fmt.Sprintf("bl%d", i)
	}
	t.writeMsg(q+"a", "neighbour", "")
	start := t.writeMany(q, msgs, ticks)
	c := t.slowWS(readPath("/read/ws", q, "", -1))
	var got []ezItem
	for len(got) < n {
		f, ok := c.next(10 * time.Second)
		switch {
		case !ok:
			t.Fatalf("an EZComet backlog of %d messages read through a 4 KB window: stalled after %d", n, len(got))
		case f.err != nil || f.op == ws.OpClose:
			t.skipIfAged(start, fmt.Errorf("an EZComet backlog of %d messages read through a 4 KB window: the reader was cut after %d (%v, close %d %q)", n, len(got), f.err, f.code, f.reason))
		}
		if it := t.decodeEZFrame("backlog", f.payload); !it.gap {
			got = append(got, it)
		}
	}
	if err := sameItems(got, msgs, ticks); err != nil {
		t.skipIfAged(start, fmt.Errorf("an EZComet backlog of %d messages read through a 4 KB window: %v", n, err))
	}
	if f, ok := c.next(300 * time.Millisecond); ok && f.err == nil {
		t.Fatalf("after the backlog of %s the reader got %q (a neighbouring channel's message?)", q, clip(f.payload))
	}
	c.close()
}

// backlogCF: a Cometify WebSocket listener from id 0 replays 64 KiB pushes,
// more than --max-unsent-bytes and the kernel's buffers hold, through a
// 4 KB receive window: all, in order, none cut, and nothing of a
// neighbouring identifier.
func backlogCF(t *caseT) {
	const size = 65536
	n := (t.cfg.MaxUnsentBytes+kernelSendBufferMax()+1<<20)/size + 1
	if n > 2000 {
		t.Notef("a Cometify replay past --max-unsent-bytes %d needs too many pushes", t.cfg.MaxUnsentBytes)
		return
	}
	a := t.cfg.Account
	x := ident()
	text := func(i int) string { return fmt.Sprintf("%06d", i) + strings.Repeat("r", size-6) }
	t.push(x+"a", "neighbour")
	start := time.Now()
	t.pipeline(n, 8, func(i int) string {
		return t.request("POST", pushPath(a, x), pushForm(a, x, text(i), "0", strconv.Itoa(i+1)))
	}, func(i int, r *reply) {
		t.pushAnswer(r, fmt.Sprintf("push %d of %d", i+1, n), strconv.Itoa(i+1))
	})
	c := t.slowWS(listenerPath(a, viaWS, idList(x, 0)))
	var last int64
	for last < int64(n) {
		f, ok := c.next(10 * time.Second)
		switch {
		case !ok:
			t.Fatalf("a Cometify replay of %d pushes of 64 KiB through a 4 KB window: stalled after push %d", n, last)
		case f.err != nil || f.op == ws.OpClose:
			if age := time.Since(start); age > t.cfg.CFReplayWindow-time.Second {
				t.Skipf("a Cometify replay of %d pushes: %v old, too close to --cf-replay-window %v", n, age.Round(time.Millisecond), t.cfg.CFReplayWindow)
			}
			t.Fatalf("a Cometify replay of %d pushes of 64 KiB (%d MiB) through a 4 KB window: the listener was cut after push %d (%v, close %d %q)", n, n*size>>20, last, f.err, f.code, f.reason)
		}
		it, known := t.decodeCFObject("replay", f.payload)
		if !known || it.kind != cfPush {
			continue
		}
		if it.ident != x || it.id != last+1 || it.data != text(int(last)) {
			t.Fatalf("a Cometify replay through a 4 KB window: after push %d got %v", last, it)
		}
		last = it.id
	}
	if f, ok := c.next(300 * time.Millisecond); ok && f.err == nil {
		t.Fatalf("after the replay of %s the listener got %q (a neighbouring identifier's push?)", x, clip(f.payload))
	}
	c.close()
}

// checkUnreadPipeline pipelines 1000 /reads of a channel whose answer is
// about 32 KiB (so that the answers add up to 8 times the output bound)
// on a connection that reads nothing. Meanwhile other clients must be
// served, and with --pid the server's resident memory, sampled while the
// reads sit there, must grow by less than twice --max-unsent-bytes.
func checkUnreadPipeline(t *caseT) {
	const n = 1000
	bound := t.cfg.MaxUnsentBytes
	k := min(t.cfg.ReadBatch, t.cfg.EZMaxQueue)
	size := min(max(max(32<<10, 8*bound/n)/k, 1), 4096)
	q := t.qname()
	msgs := make([]string, k)
	ticks := make([]string, k)
	for i := range k {
		msgs[i], ticks[i] = fmt.Sprintf("%05d", i)+strings.Repeat("u", max(size-5, 0)), fmt.Sprintf("u%d", i)
	}
	t.writeMany(q, msgs, ticks)
	one := t.doWithin(defaultWait, "GET", readPath("/read", q, "", 0), "")
	t.wantOK(one, "a /read of the channel")
	total := n * len(one.body)
	if total < 4*bound {
		t.Notef("unread pipelined /reads: %d answers of %d bytes add up to less than 4× --max-unsent-bytes", n, len(one.body))
	}

	rss := func() int { return 0 }
	if pid := t.cfg.PID; pid > 0 {
		rss = func() int {
			v, err := vmRSS(pid)
			if err != nil {
				t.Fatalf("the server's memory: %v", err)
			}
			return v
		}
	} else {
		t.Notef("the server's memory (pass --pid of a server on this host)")
	}
	base := rss()
	var pipe strings.Builder
	for range n {
		pipe.WriteString(t.request("GET", readPath("/read", q, "", 0), ""))
	}
	hog, err := t.dialErr(4096)
	if err != nil {
		t.Fatalf("connect %s: %v", t.cfg.hostPort(), err)
	}
	go func() { _ = hog.trySend(pipe.String()) }()

	// Others are served meanwhile, and the server's memory is sampled.
	peak := base
	other := t.qname()
	for i := range 20 {
		t.sleep(150 * time.Millisecond)
		peak = max(peak, rss())
		if i%5 == 2 {
			tick := t.writeMsg(other, fmt.Sprint("served ", i), "")
			if a := t.poll(other, "", 0); len(a.messages) == 0 || a.messages[len(a.messages)-1].tick != tick {
				t.Fatalf("while a client pipelines %d /reads and reads nothing, another client's read: %v", n, a.messages)
			}
		}
	}
	if t.cfg.PID > 0 && peak-base >= 2*bound {
		t.Fatalf("a client that pipelined %d /reads (answers of %d bytes, %d MiB in all) and read nothing: the server's resident memory grew by %d KiB, want less than 2× --max-unsent-bytes (%d KiB)",
			n, len(one.body), total>>20, (peak-base)>>10, 2*bound>>10)
	}
	hog.close()
	if got, _ := t.readAll(q, ""); len(got) != k {
		t.Fatalf("the channel the pipelined /reads asked for: read back %d messages, want %d", len(got), k)
	}
}

// vmRSS reads a process's resident set size in bytes from
// /proc/PID/status.
func vmRSS(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.Atoi(f[0])
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS line", pid)
}
