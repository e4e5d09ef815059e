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
		what:    "SIGTERM: waiting poll answered with retry_ms (X-02), WebSocket closed 1001 \"restart\", exit 0",
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
	q := t.qname()
	// A poll that waits, and a WebSocket that listens.
	pw := t.dial()
	pw.send(t.request("GET", readPath("/read", q, "", 60), ""))
	wsc := t.mustWS(readPath("/read/ws", t.qname(), "", -1))
	wsc.start()
	// Both must be registered before the signal; a poll answered at once
	// would show here.
	if closed, extra := pw.closedWithin(500 * time.Millisecond); closed || len(extra) > 0 {
		t.Fatalf("a poll on an empty channel did not wait: closed=%v %q", closed, clip(extra))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to %d: %v", pid, err)
	}
	t.parallel(
		func() {
			r, err := pw.readErr("GET", 10*time.Second)
			if err != nil {
				t.Fatalf("waiting poll on SIGTERM: want an answer, got %v", err)
			}
			m := t.wantOK(r, "waiting poll on SIGTERM")
			if msgs, ok := m["messages"].([]any); !ok || len(msgs) != 0 {
				t.Fatalf(`waiting poll on SIGTERM: want "messages":[], got %s`, r)
			}
			n, ok := m["retry_ms"].(json.Number)
			if !ok {
				t.Fatalf(`waiting poll on SIGTERM: want "retry_ms":N (X-02), got %s`, r)
			}
			if v, err := n.Int64(); err != nil || v < 0 {
				t.Fatalf(`waiting poll on SIGTERM: "retry_ms" must be a non-negative integer, got %s`, n)
			}
		},
		func() {
			for {
				f, ok := wsc.next(10 * time.Second)
				if !ok {
					t.Fatalf("WebSocket on SIGTERM: no close frame within 10s")
				}
				if f.err != nil {
					t.Fatalf("WebSocket on SIGTERM: ended without a close frame: %v", f.err)
				}
				if f.op == ws.OpClose {
					if f.code != ws.StatusGoingAway || f.reason != "restart" {
						t.Fatalf(`WebSocket on SIGTERM: close %d %q, want 1001 "restart" (X-02)`, f.code, f.reason)
					}
					return
				}
			}
		},
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
