package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// drainCases are the graceful-stop rules; C-11 runs after every other case
// because it stops the server.
func drainCases() []ruleCase {
	return []ruleCase{{
		rule:    "C-11",
		what:    "SIGTERM: waiting polls (EZComet and Cometify) answered with retry_ms (X-02), WebSockets closed 1001 \"restart\", exit 0",
		run:     checkGracefulStop,
		last:    true,
		timeout: 60 * time.Second,
	}}
}

func checkGracefulStop(t *caseT) {
	pid := t.cfg.PID
	if pid <= 0 {
		t.Skipf("pass --pid of the server to let the suite stop it with SIGTERM")
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	// A poll that waits and a WebSocket that listens, on each API.
	pw := t.dial()
	pw.send(t.request("GET", readPath("/read", t.qname(), "", 60), ""))
	cpw := t.dial()
	cpw.send(t.request("GET", listenerPath(t.cfg.Account, viaPoll, ident(), "timeout", "60"), ""))
	wsc := t.mustWS(readPath("/read/ws", t.qname(), "", -1))
	wsc.start()
	cws := t.mustWS(listenerPath(t.cfg.Account, viaWS, ident()))
	cws.start()
	// All must be registered before the signal; a poll answered at once
	// would show here.
	for _, w := range []*wireConn{pw, cpw} {
		if closed, extra := w.closedWithin(500 * time.Millisecond); closed || len(extra) > 0 {
			t.Fatalf("a poll with nothing to deliver did not wait: closed=%v %q", closed, clip(extra))
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %d: %v", pid, err)
	}
	t.parallel(
		func() { expectRetryHint(t, pw, "messages", "EZComet") },
		func() { expectRetryHint(t, cpw, "pushes", "Cometify") },
		func() { expectRestartClose(t, wsc, "EZComet") },
		func() { expectRestartClose(t, cws, "Cometify") },
	)
	code, err := waitExit(t, pid, 20*time.Second)
	if err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	if code > 0 {
		t.Fatalf("after SIGTERM the server exited with status %d, want 0", code)
	}
	if code < 0 {
		t.Notef("exit status (the process was reaped by its parent before the suite could read it)")
	}
}

// expectRetryHint reads a waiting poll's answer to SIGTERM: ok, an empty
// list under key, and "retry_ms".
func expectRetryHint(t *caseT, w *wireConn, key, api string) {
	ctx := api + " waiting poll on SIGTERM"
	r, err := w.readErr("GET", 10*time.Second)
	if err != nil {
		t.Fatalf("%s: want an answer, got %v", ctx, err)
	}
	m := t.wantOK(r, ctx)
	if list, ok := m[key].([]any); !ok || len(list) != 0 {
		t.Fatalf(`%s: want "%s":[], got %s`, ctx, key, r)
	}
	n, ok := m["retry_ms"].(json.Number)
	if !ok {
		t.Fatalf(`%s: want "retry_ms":N (X-02), got %s`, ctx, r)
	}
	if v, err := n.Int64(); err != nil || v < 0 {
		t.Fatalf(`%s: "retry_ms" must be a non-negative integer, got %s`, ctx, n)
	}
}

// expectRestartClose reads frames until the close, which must be 1001
// "restart".
func expectRestartClose(t *caseT, c *wsConn, api string) {
	ctx := api + " WebSocket on SIGTERM"
	for {
		f, ok := c.next(10 * time.Second)
		if !ok {
			t.Fatalf("%s: no close frame within 10s", ctx)
		}
		if f.err != nil {
			t.Fatalf("%s: ended without a close frame: %v", ctx, f.err)
		}
		if f.op == ws.OpClose {
			if f.code != ws.StatusGoingAway || f.reason != "restart" {
				t.Fatalf(`%s: close %d %q, want 1001 "restart" (X-02)`, ctx, f.code, f.reason)
			}
			return
		}
	}
}

// waitExit waits for pid to end. It returns the exit status when it could
// read it from a zombie's /proc entry, -1 when the parent reaped it first.
func waitExit(t *caseT, pid int, d time.Duration) (int, error) {
	end := time.Now().Add(t.cfg.scaled(d))
	for time.Now().Before(end) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			if killErr := syscall.Kill(pid, 0); errors.Is(killErr, syscall.ESRCH) {
				return -1, nil
			}
		} else if state, code, ok := parseProcStat(string(stat)); ok && state == "Z" {
			return code, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, fmt.Errorf("process %d still running %v after SIGTERM", pid, t.cfg.scaled(d))
}

// parseProcStat reads the state (field 3) and exit_code (field 52, a wait
// status) from /proc/PID/stat; the command name may hold spaces and ')'.
func parseProcStat(s string) (state string, exit int, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 50 {
		return "", 0, false
	}
	wstat, err := strconv.Atoi(f[49])
	if err != nil {
		return "", 0, false
	}
	st := syscall.WaitStatus(wstat)
	if st.Signaled() {
		return f[0], 128 + int(st.Signal()), true
	}
	return f[0], st.ExitStatus(), true
}
