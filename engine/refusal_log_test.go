package engine

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// logCapture is a slog.Handler keeping every record's message and its
// class and count attributes.
type logCapture struct {
	mu    sync.Mutex
	lines []refusalLine
}

type refusalLine struct {
	msg, class string
	count      int64
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCapture) WithGroup(string) slog.Handler            { return h }
func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	l := refusalLine{msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "class":
			l.class = a.Value.String()
		case "count":
			l.count = a.Value.Int64()
		}
		return true
	})
	h.mu.Lock()
	h.lines = append(h.lines, l)
	h.mu.Unlock()
	return nil
}

// take returns the lines logged since the last take.
func (h *logCapture) take() []refusalLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.lines
	h.lines = nil
	return l
}

// total sums the counts of class over the lines so far, and counts them.
func (h *logCapture) total(class string) (sum int64, lines int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lines {
		if l.class == class {
			sum += l.count
			lines++
		}
	}
	return sum, lines
}

// TestRefusalLogOneLinePerClassPerInterval, on a fake clock: a flood of
// one class makes one line at its first refusal and then at most one per
// interval, each with the count since the last; classes count apart;
// nothing is lost at the stop.
func TestRefusalLogOneLinePerClassPerInterval(t *testing.T) {
	h := &logCapture{}
	r := newRefusalLog(slog.New(h), refusalLogInterval)
	const sec = int64(time.Second)
	expect := func(step string, want ...refusalLine) {
		t.Helper()
		got := h.take()
		if len(got) != len(want) {
			t.Fatalf("%s: logged %v, want %v", step, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: line %d = %+v, want %+v", step, i, got[i], want[i])
			}
		}
	}

	r.note(refusedConnsPerIP, 0)
	expect("first refusal", refusalLine{"refused 1 connection: conns-per-ip", "conns-per-ip", 1})
	for i := range int64(999) {
		r.note(refusedConnsPerIP, i*sec/100) // 999 more within 10 s
	}
	r.note(refusedHeaderTooLarge, 5*sec)
	r.note(refusedHeaderTooLarge, 6*sec)
	expect("flood within the interval",
		refusalLine{"refused 1 request: header-too-large", "header-too-large", 1})
	r.flush(10*sec - 1)
	expect("sweep before the interval ends")
	r.flush(10 * sec)
	expect("sweep at the interval's end",
		refusalLine{"refused 999 connections: conns-per-ip", "conns-per-ip", 999})
	r.flush(16 * sec)
	expect("header class's own interval",
		refusalLine{"refused 1 request: header-too-large", "header-too-large", 1})
	r.flush(60 * sec)
	expect("quiet")
	r.note(refusedConnsPerIP, 61*sec)
	r.note(refusedConnsPerIP, 62*sec)
	r.note(refusedMaxConns, 62*sec)
	expect("a class quiet for an interval logs at once again",
		refusalLine{"refused 1 connection: conns-per-ip", "conns-per-ip", 1},
		refusalLine{"refused 1 connection: max-conns", "max-conns", 1})
	r.flushAll(63 * sec)
	expect("stop", refusalLine{"refused 1 connection: conns-per-ip", "conns-per-ip", 1})
	r.flushAll(64 * sec)
	expect("nothing left")
}

// TestRefusalLogConcurrent: loops noting at once while the ticker
// flushes lose no count and write no more than one line per interval
// (under -race, also that the counters are safe).
func TestRefusalLogConcurrent(t *testing.T) {
	h := &logCapture{}
	r := newRefusalLog(slog.New(h), refusalLogInterval)
	const loops, each = 8, 1000
	var wg sync.WaitGroup
	for range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r.note(refusedFlood, int64(i)) // all within one interval
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range each {
			r.flush(int64(i))
		}
	}()
	wg.Wait()
	r.flushAll(int64(each))
	sum, lines := h.total("pipelined-flood")
	if sum != loops*each || lines != 2 {
		t.Errorf("%d lines summing %d, want 2 lines (the first refusal, the stop) summing %d", lines, sum, loops*each)
	}
}

// TestServerLogsRefusalsOncePerInterval: a real server refusing a burst
// of connections over MaxConnsPerIP (each gets its 429) logs one line at
// the first and one with the rest when it stops, not one per connection.
func TestServerLogsRefusalsOncePerInterval(t *testing.T) {
	h := newTestHandler()
	opts := testOptions()
	opts.MaxConnsPerIP = 1
	capture := &logCapture{}
	s, addr := startServer(t, opts, h, func(s *Server) {
		// An interval longer than the test: only the first refusal and
		// the stop may log.
		s.refusals = newRefusalLog(slog.New(capture), time.Hour)
	})
	_, port, _ := net.SplitHostPort(addr)
	target := "127.0.0.1:" + port
	dialFrom(t, "127.0.0.3", target) // holds the one place
	const refused = 20
	for range refused {
		_, br := dialFrom(t, "127.0.0.3", target)
		expectTooMany(t, br)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal count at the stop", func() bool {
		sum, _ := capture.total("conns-per-ip")
		return sum >= refused
	})
	sum, lines := capture.total("conns-per-ip")
	if sum != refused || lines != 2 {
		t.Errorf("%d lines summing %d, want 2 summing %d: %+v", lines, sum, refused, capture.take())
	}
}
