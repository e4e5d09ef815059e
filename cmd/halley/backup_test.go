package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The backup test (issue 18): writers run against the real binary; a
// backup is taken through the control socket while they write; a server
// started on the restored directory must hold every write acknowledged
// before the backup command started, read back through both APIs
// (EZComet /read, a Cometify listener replaying from id 0), each writer's
// messages a gapless prefix of what it sent, bodies intact. Its power is
// shown by a control run against a binary built with the planted fault
// `halley_fault_backupcopy` (the backup copies the data directory's
// files without the WAL), which the same check must catch losing writes.

// backupWriter writes to one channel (EZComet) or identifier (Cometify)
// until stopped; acked counts its acknowledged writes, which the test
// reads while it runs.
type backupWriter struct {
	id    int
	ez    bool
	acked atomic.Int64
}

func (w *backupWriter) name() string { return fmt.Sprintf("bk%d", w.id) }

// body is what the writer sends as its n-th message.
func (w *backupWriter) body(n int) string {
	return fmt.Sprintf("%s-%d-%s", w.name(), n, strings.Repeat("x", n%50))
}

// run writes message after message (EZComet tick n, or Cometify push_id
// n+1) until ctx ends, a write is refused or it has written maxWrites.
func (w *backupWriter) run(ctx context.Context, base string) {
	client := &http.Client{Timeout: 5 * time.Second}
	key, cfKey, secret := currentCreds()
	for n := 0; n < maxWrites && ctx.Err() == nil; n++ {
		var resp *http.Response
		var err error
		if w.ez {
			tick := strconv.Itoa(n)
			resp, err = client.PostForm(base+"/write", url.Values{"api_key": {key}, "qname": {"demo-" + w.name()}, "msg": {w.body(n)}, "tick": {tick}})
		} else {
			text := w.body(n)
			secure := md5hex(cfKey + md5hex(secret) + w.name() + text)
			resp, err = client.PostForm(base+"/"+cfKey+"/push/"+w.name(), url.Values{"identifier": {w.name()}, "secret": {"0"},
				"text": {text}, "secure": {secure}, "push_id": {strconv.Itoa(n + 1)}})
		}
		if err != nil {
			return
		}
		var v struct{ Code string }
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || v.Code != "ok" {
			return
		}
		w.acked.Store(int64(n + 1))
	}
}

// maxWrites bounds each writer, below startServer's --read-batch 1000 so
// that one EZComet read answer holds a whole channel.
const maxWrites = 900

// stored reads back what s holds of w: the EZComet channel from its
// start, or a Cometify listener's replay from id 0.
func (w *backupWriter) stored(t *testing.T, s *server) []string {
	t.Helper()
	if !w.ez {
		return readPushes(t, s, w.name())
	}
	resp, err := http.Get(s.base + "/read?timeout=0&qname=demo-" + w.name())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Code     string
		Messages [][2]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Code != "ok" || len(v.Messages) > maxWrites {
		t.Fatalf("read demo-%s: %v %s, %d messages", w.name(), err, v.Code, len(v.Messages))
	}
	var bodies []string
	for n, m := range v.Messages {
		if m[0] != strconv.Itoa(n) {
			t.Errorf("demo-%s: message %d has tick %q", w.name(), n, m[0])
		}
		bodies = append(bodies, m[1])
	}
	return bodies
}

// missingFrom counts the first `want` writes of w that s lacks, and fails
// when what s holds is not a gapless prefix of what w sent, intact.
func (w *backupWriter) missingFrom(t *testing.T, s *server, want int64) int64 {
	got := w.stored(t, s)
	for n, b := range got {
		if b != w.body(n) {
			t.Errorf("%s: message %d is %q, want %q: not intact", w.name(), n, b, w.body(n))
			break
		}
	}
	return max(0, want-int64(len(got)))
}

// halley runs the binary and returns its exit code and output.
func halley(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatalf("halley %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String()
}

// stopServer stops s gracefully and waits for it.
func stopServer(s *server) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// backupRun is one run of the backup test.
type backupRun struct {
	bin, dir, backup string
	writers          []*backupWriter
	before           []int64 // acknowledged when the backup command started
}

// takeBackupUnderLoad starts a server on a fresh data directory, runs
// writers, takes a backup through the control socket while they write,
// and stops the writers and the server.
func takeBackupUnderLoad(t *testing.T, bin string) *backupRun {
	resetCreds()
	root := t.TempDir()
	r := &backupRun{bin: bin, dir: filepath.Join(root, "data"), backup: filepath.Join(root, "backup")}
	s := startServer(t, bin, r.dir, freePort(t))
	defer stopServer(s)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 4 {
		w := &backupWriter{id: i, ez: i%2 == 0}
		r.writers = append(r.writers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, s.base) }()
	}
	defer func() { cancel(); wg.Wait() }()
	// Mid-stream: every writer has some writes acknowledged.
	for _, w := range r.writers {
		for i := 0; w.acked.Load() < 30; i++ {
			if i == 400 {
				t.Fatalf("writer %s: %d writes acknowledged in 20 s", w.name(), w.acked.Load())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, w := range r.writers {
		r.before = append(r.before, w.acked.Load())
	}
	code, out := halley(t, bin, "backup", "--data", r.dir, r.backup)
	if code != 0 || !strings.Contains(out, "by the running server") {
		t.Fatalf("backup of a running server: exit %d: %s", code, out)
	}
	time.Sleep(300 * time.Millisecond) // the writers go on past the backup point
	for _, w := range r.writers {
		if w.acked.Load() == 0 {
			t.Fatalf("writer %s stopped", w.name())
		}
	}
	// While the server runs: no second backup over the first, no restore
	// over its data directory.
	if code, out := halley(t, bin, "backup", "--data", r.dir, r.backup); code == 0 || !strings.Contains(out, "exists") {
		t.Errorf("a backup over an existing one: exit %d: %s", code, out)
	}
	if code, out := halley(t, bin, "restore", "--data", r.dir, r.backup); code == 0 || !strings.Contains(out, "server is running") {
		t.Errorf("a restore over a running server's data directory: exit %d: %s", code, out)
	}
	if code, out := halley(t, bin, "restore", "--data", filepath.Join(root, "copy"), r.dir); code == 0 || !strings.Contains(out, "not a backup") {
		t.Errorf("a restore from a running server's data directory: exit %d: %s", code, out)
	}
	return r
}

// restoreAndCount restores backup into target (absent or empty), starts
// a server on it and returns how many of the writes in want (per writer,
// plus the demo account) it lacks, out of how many.
func restoreAndCount(t *testing.T, r *backupRun, backup, target string, want []int64) (acked, missing int64) {
	if code, out := halley(t, r.bin, "restore", "--data", target, backup); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	_, cfKey, _ := currentCreds()
	s := startServer(t, r.bin, target, freePort(t))
	defer stopServer(s)
	acked++
	if s.cfKey != cfKey {
		t.Logf("the restored server's demo account has cf_api_key %s, not %s: the account was lost", s.cfKey, cfKey)
		missing++
	}
	for i, w := range r.writers {
		acked += want[i]
		missing += w.missingFrom(t, s, want[i])
	}
	return acked, missing
}

// checkPrivate fails unless dir is 0700 and every file in it 0600 (C-14).
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if want := map[bool]fs.FileMode{true: 0o700, false: 0o600}[d.IsDir()]; info.Mode().Perm() != want || !d.IsDir() && !info.Mode().IsRegular() {
			t.Errorf("%s: %v, want %v", path, info.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackupUnderLoadRestoresEveryAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped in -short mode")
	}
	bin := buildHalley(t, "")
	r := takeBackupUnderLoad(t, bin)
	checkPrivate(t, r.backup)
	acked, missing := restoreAndCount(t, r, r.backup, filepath.Join(t.TempDir(), "restored"), r.before)
	if missing > 0 {
		t.Fatalf("%d of the %d writes acknowledged before the backup started are missing from the restored server", missing, acked)
	}
	if acked < 100 {
		t.Fatalf("only %d writes acknowledged before the backup: the test did not exercise the server", acked)
	}
	t.Logf("backup under load: all %d writes acknowledged before it are in the restored server", acked)

	// The server is stopped now: a backup opens the data directory
	// itself and holds every write acknowledged, restored into an empty
	// directory made beforehand.
	offline := filepath.Join(t.TempDir(), "offline")
	code, out := halley(t, bin, "backup", "--data", r.dir, offline)
	if code != 0 || !strings.Contains(out, "from the stopped data directory") {
		t.Fatalf("backup of a stopped data directory: exit %d: %s", code, out)
	}
	checkPrivate(t, offline)
	var all []int64
	for _, w := range r.writers {
		all = append(all, w.acked.Load())
	}
	empty := t.TempDir()
	if acked, missing := restoreAndCount(t, r, offline, empty, all); missing > 0 {
		t.Fatalf("%d of the %d acknowledged writes are missing from the restored offline backup", missing, acked)
	}
	// No backup of a data directory that is not there.
	if code, out := halley(t, bin, "backup", "--data", filepath.Join(t.TempDir(), "typo"), filepath.Join(t.TempDir(), "b")); code == 0 || !strings.Contains(out, "not a data directory") {
		t.Fatalf("a backup of an absent data directory: exit %d: %s", code, out)
	}
	// A non-empty data directory is never overwritten.
	if code, out := halley(t, bin, "restore", "--data", r.dir, offline); code == 0 || !strings.Contains(out, "not empty") {
		t.Fatalf("a restore over a non-empty data directory: exit %d: %s", code, out)
	}
}

// TestBackupControlPlantedFault proves the backup check can fail: a
// backup that copies the data directory without the WAL must be caught
// losing acknowledged writes.
func TestBackupControlPlantedFault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped in -short mode")
	}
	bin := buildHalley(t, "halley_fault_backupcopy")
	r := takeBackupUnderLoad(t, bin)
	acked, missing := restoreAndCount(t, r, r.backup, filepath.Join(t.TempDir(), "restored"), r.before)
	if missing == 0 {
		t.Fatalf("the backup check saw no loss from a backup without the WAL (%d writes acknowledged): it has no power", acked)
	}
	t.Logf("planted fault detected: the restored server lacks %d of %d writes acknowledged before the backup", missing, acked)
}

// TestBackupArgs: backup and restore take one path and --data before or
// after it.
func TestBackupArgs(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{{"--data", "d", "p"}, {"p", "--data", "d"}, {"-data=d", "p"}} {
		dir, path, ok := parseDirAndPath("backup", args, &out)
		if !ok || dir != "d" || path != "p" {
			t.Errorf("%q: got %q %q %v", args, dir, path, ok)
		}
	}
	if dir, _, ok := parseDirAndPath("backup", []string{"p"}, &out); !ok || dir != "./data" {
		t.Errorf("default data directory: %q %v", dir, ok)
	}
	for _, args := range [][]string{{}, {"p", "q"}, {"--data", "d"}, {"p", "--nope"}, {"--data"}} {
		if _, _, ok := parseDirAndPath("backup", args, &out); ok {
			t.Errorf("%q: accepted", args)
		}
	}
}
