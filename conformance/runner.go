package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ruleCase is one conformance case: it checks one spec rule and its edges.
type ruleCase struct {
	rule string
	what string
	run  func(t *caseT)
	// timeout bounds the whole case before TimeoutScale (default 60s).
	timeout time.Duration
	// last cases run alone after every other case (C-11 stops the server).
	last bool
	// alone cases run one at a time before every other case, so that no
	// other case disturbs what they measure (the server's memory).
	alone bool
}

// Status of a finished case.
const (
	statusPass = "PASS"
	statusFail = "FAIL"
	statusSkip = "SKIP"
)

// Result is the outcome of one case.
type Result struct {
	Rule   string `json:"rule"`
	Status string `json:"status"`
	What   string `json:"what"`
	Detail string `json:"detail"`
	Ms     int64  `json:"ms"`
}

// Summary counts the outcomes of a run.
type Summary struct {
	Passed  int      `json:"passed"`
	Failed  int      `json:"failed"`
	Skipped int      `json:"skipped"`
	Results []Result `json:"-"`
}

// reporter prints results; it is called from one goroutine, in spec order.
type reporter struct {
	result func(Result)
	end    func(Summary)
}

func textReporter(w io.Writer) reporter {
	return reporter{
		result: func(r Result) {
			if r.Status == statusPass {
				fmt.Fprintf(w, "%s %s %s\n", r.Status, r.Rule, r.What)
				return
			}
			fmt.Fprintf(w, "%s %s %s: %s\n", r.Status, r.Rule, r.What, r.Detail)
		},
		end: func(s Summary) {
			fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.Passed, s.Failed, s.Skipped)
		},
	}
}

func jsonReporter(w io.Writer) reporter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return reporter{
		result: func(r Result) { _ = enc.Encode(r) },
		end:    func(s Summary) { _ = enc.Encode(s) },
	}
}

// Run executes every selected case against cfg.Target and writes the text
// report to w. Cancelling ctx fails the cases still running.
func Run(ctx context.Context, cfg Config, w io.Writer) Summary {
	cfg.EnsureDefaults()
	return runCtx(ctx, cfg, allCases(), textReporter(w))
}

func run(cfg Config, cases []ruleCase, rep reporter) Summary {
	return runCtx(context.Background(), cfg, cases, rep)
}

// runCtx runs cases in parallel (at most cfg.Parallel at once; cases
// marked alone first, one at a time; cases marked last alone at the end)
// and reports them in the order given.
func runCtx(ctx context.Context, cfg Config, cases []ruleCase, rep reporter) Summary {
	var selected []ruleCase
	for _, c := range cases {
		if cfg.selected(c.rule) {
			selected = append(selected, c)
		}
	}
	shared := &runState{}
	results := make([]chan Result, len(selected))
	for i := range results {
		results[i] = make(chan Result, 1)
	}
	go func() {
		for i, c := range selected {
			if c.alone {
				results[i] <- runCase(ctx, &cfg, shared, c)
			}
		}
		sem := make(chan struct{}, max(cfg.Parallel, 1))
		var wg sync.WaitGroup
		for i, c := range selected {
			if c.last || c.alone {
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] <- runCase(ctx, &cfg, shared, c)
				<-sem
			}()
		}
		wg.Wait()
		for i, c := range selected {
			if c.last {
				results[i] <- runCase(ctx, &cfg, shared, c)
			}
		}
	}()
	var sum Summary
	for _, ch := range results {
		r := <-ch
		switch r.Status {
		case statusPass:
			sum.Passed++
		case statusFail:
			sum.Failed++
		default:
			sum.Skipped++
		}
		sum.Results = append(sum.Results, r)
		rep.result(r)
	}
	rep.end(sum)
	return sum
}

// runCase runs one case on its own goroutine and bounds it by its timeout:
// on expiry every socket the case opened is closed, which unblocks it.
func runCase(parent context.Context, cfg *Config, shared *runState, c ruleCase) Result {
	timeout := c.timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	timeout = cfg.scaled(timeout)
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	if shared == nil {
		shared = &runState{}
	}
	t := &caseT{ctx: ctx, cfg: cfg, rule: c.rule, shared: shared}
	// Each case dials from its own loopback address, so that per-IP
	// listener caps (CF-L-08) never couple cases that run together.
	t.src = shared.sourceAddr(cfg)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				t.record(statusFail, fmt.Sprintf("panic: %v", p))
			}
		}()
		c.run(t)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.record(statusFail, fmt.Sprintf("case did not finish within %v", timeout))
		t.closeAll()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	t.closeAll()
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Result{Rule: c.rule, Status: t.status, What: c.what, Detail: t.detail, Ms: time.Since(start).Milliseconds()}
	if r.Status == "" {
		r.Status = statusPass
	}
	if len(t.notes) > 0 {
		r.What += " (not checked: " + strings.Join(t.notes, "; ") + ")"
	}
	r.Detail = strings.Join(strings.Fields(r.Detail), " ")
	return r
}

// runState is shared by the cases of one run.
type runState struct {
	// bulk serialises bulk writes (thousands of synced writes) so that
	// they do not slow each other past a short --ez-max-age.
	bulk sync.Mutex

	addrMu   sync.Mutex
	addrNext int // source addresses handed out (see sourceAddr)
}

// caseT is handed to a case, like testing.T: Fatalf and Skipf end the
// calling goroutine. Methods are safe from any goroutine of the case.
type caseT struct {
	ctx    context.Context
	cfg    *Config
	rule   string
	shared *runState
	// root is the case's own caseT when this one is a view of it on
	// another target or source address (see at, from); outcomes and
	// sockets belong to the root.
	root *caseT
	// src is the local address sockets are bound to; invalid means the
	// kernel's choice (a target that is not IPv4 loopback).
	src netip.Addr

	mu     sync.Mutex
	status string
	detail string
	notes  []string
	conns  []io.Closer
}

// record keeps the first outcome: later failures are consequences.
func (t *caseT) record(status, detail string) {
	if t.root != nil {
		t = t.root
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status == "" {
		t.status, t.detail = status, detail
	}
}

func (t *caseT) failed() bool {
	if t.root != nil {
		t = t.root
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status != ""
}

// Fatalf fails the case and ends the calling goroutine.
func (t *caseT) Fatalf(format string, args ...any) {
	t.record(statusFail, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Skipf skips the case and ends the calling goroutine.
func (t *caseT) Skipf(format string, args ...any) {
	t.record(statusSkip, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Notef records a part of the rule this run could not check, and why; it is
// printed after the case's description.
func (t *caseT) Notef(format string, args ...any) {
	if t.root != nil {
		t = t.root
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// track registers a socket to close when the case ends or times out.
func (t *caseT) track(c io.Closer) {
	if t.root != nil {
		t = t.root
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conns = append(t.conns, c)
}

func (t *caseT) closeAll() {
	if t.root != nil {
		t = t.root
	}
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// at is a view of the case that talks to another address of the same
// server (C-01's extra --listen addresses).
func (t *caseT) at(target string) *caseT {
	cfg := *t.cfg
	cfg.Target = target
	root := t
	if t.root != nil {
		root = t.root
	}
	return &caseT{ctx: t.ctx, cfg: &cfg, rule: t.rule, shared: t.shared, root: root, src: t.src}
}

// from is a view of the case whose sockets are bound to the local address
// src (a client IP of its own for per-IP rules).
func (t *caseT) from(src netip.Addr) *caseT {
	root := t
	if t.root != nil {
		root = t.root
	}
	return &caseT{ctx: t.ctx, cfg: t.cfg, rule: t.rule, shared: t.shared, root: root, src: src}
}

// parallel runs fns concurrently and waits for all; if any failed, the
// calling goroutine ends too.
func (t *caseT) parallel(fns ...func()) {
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					t.record(statusFail, fmt.Sprintf("panic: %v", p))
				}
			}()
			fn()
		}()
	}
	wg.Wait()
	if t.failed() {
		runtime.Goexit()
	}
}

// within is now plus d scaled, never past the case's own deadline.
func (t *caseT) within(d time.Duration) time.Time {
	dl := time.Now().Add(t.cfg.scaled(d))
	if cd, ok := t.ctx.Deadline(); ok && cd.Before(dl) {
		return cd
	}
	return dl
}

// sleep waits d (not scaled) or until the case ends.
func (t *caseT) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.ctx.Done():
		runtime.Goexit()
	}
}

// slack is the scaled grace a timing check allows beyond a server timer.
func (t *caseT) slack() time.Duration { return t.cfg.scaled(3 * time.Second) }
