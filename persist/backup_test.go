package persist

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestCheckpointUnderWrites: writers on two channels and two topics run
// while Checkpoint is called; the backup, opened as a store of its own,
// holds every write acknowledged before the call, as a gapless prefix of
// what each writer sent, with the bodies it sent. Built with
// -tags halley_fault_backupcopy (a copy without the WAL) it fails.
func TestCheckpointUnderWrites(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	acct, err := s.AddAccount("bk")
	if err != nil {
		t.Fatal(err)
	}
	const writers = 4
	const perWriter = 300 // bounded: the checkpoint lands somewhere inside
	var acked [writers]atomic.Int64
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perWriter {
				var err error
				if i%2 == 0 {
					err = write(t, s, msg(fmt.Sprintf("bk-ch%d", i), fmt.Sprintf("t%d", n), fmt.Sprintf("m%d-%d", i, n))).Err
				} else {
					err = push(t, s, cfGiven(fmt.Sprintf("bk/id%d", i), uint64(n+1), fmt.Sprintf("p%d-%d", i, n))).Err
				}
				if err != nil {
					t.Errorf("writer %d, write %d: %v", i, n, err)
					return
				}
				acked[i].Store(int64(n + 1))
			}
		}()
	}
	defer wg.Wait() // a failed wait below must not close the store under them
	// waitAcked waits until every writer has n writes acknowledged.
	waitAcked := func(n int64) {
		for i := range writers {
			for try := 0; acked[i].Load() < n; try++ {
				if try == 10000 {
					t.Fatalf("writer %d: %d writes acknowledged in 10 s", i, acked[i].Load())
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	waitAcked(20)
	// Part of the data in an sstable, the rest in the memtable and WAL:
	// the checkpoint must carry both (links the one, copies the other).
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	waitAcked(40)
	var before [writers]int64
	for i := range writers {
		before[i] = acked[i].Load()
	}
	dest := filepath.Join(t.TempDir(), "backup")
	if err := s.Checkpoint(dest); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	b := openTest(t, testOptions(t, dest))
	if a, ok := b.AccountByName([]byte("bk")); !ok || a.APIKey != acct.APIKey {
		t.Fatalf("the backup lost the account: %+v %v", a, ok)
	}
	for i := range writers {
		var got []string
		if i%2 == 0 {
			for _, m := range mustRead(t, b, fmt.Sprintf("bk-ch%d", i), nil, perWriter+1).Messages {
				got = append(got, string(m.Tick)+"="+string(m.Body))
			}
		} else {
			for _, p := range mustCFRead(t, b, fmt.Sprintf("bk/id%d", i), 0, 0, perWriter+1).Pushes {
				got = append(got, fmt.Sprintf("t%d=%s", p.ID-1, p.Text))
			}
		}
		if int64(len(got)) < before[i] {
			t.Errorf("writer %d: %d writes acknowledged before the checkpoint, %d in the backup", i, before[i], len(got))
		}
		for n, g := range got {
			body := fmt.Sprintf("m%d-%d", i, n)
			if i%2 == 1 {
				body = fmt.Sprintf("p%d-%d", i, n)
			}
			if want := fmt.Sprintf("t%d=%s", n, body); g != want {
				t.Fatalf("writer %d: backup entry %d is %q, want %q", i, n, g, want)
			}
		}
	}
}

// TestCheckpointModes (C-14): the backup directory is 0700 and every file
// in it 0600, under a umask that would allow 0755 and 0644; it holds
// neither Pebble's LOCK nor the control socket.
func TestCheckpointModes(t *testing.T) {
	old := syscall.Umask(0o022) // no test in this package runs in parallel
	defer syscall.Umask(old)
	s := openTest(t, testOptions(t, ""))
	mustAppend(t, s, "m-ch", "t1", "hello")
	dest := filepath.Join(t.TempDir(), "backup")
	if err := s.Checkpoint(dest); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dest, "checkpoint")
	for _, name := range []string{"LOCK", "admin.sock"} {
		if _, err := os.Lstat(filepath.Join(dest, name)); err == nil {
			t.Errorf("the backup holds %s", name)
		}
	}
}

// TestCheckpointRefuses: an existing destination (never overwritten), a
// missing parent, a destination inside the data directory, a closed store.
func TestCheckpointRefuses(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	existing := t.TempDir()
	marker := filepath.Join(existing, "keep")
	if err := os.WriteFile(marker, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{existing, filepath.Join(t.TempDir(), "no", "backup"), filepath.Join(opts.Dir, "backup")} {
		if err := s.Checkpoint(dest); err == nil {
			t.Errorf("Checkpoint(%s) succeeded", dest)
		}
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "x" {
		t.Fatalf("the existing destination was touched: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(opts.Dir, "backup")); err == nil {
		t.Fatal("a backup was written inside the data directory")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(filepath.Join(t.TempDir(), "b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Checkpoint after Close: %v, want ErrClosed", err)
	}
}

// TestRestore: a backup restores into an absent and into an empty
// directory, the result opens with its data, the backup itself is not
// changed (it restores again), and a non-empty target or a directory
// that is no backup is refused without touching the target.
func TestRestore(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	if _, err := s.AddAccount("r"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "r-ch", "t1", "one")
	mustPush(t, s, cfGiven("r/x", 1, "uno"))
	backup := filepath.Join(t.TempDir(), "backup")
	if err := s.Checkpoint(backup); err != nil {
		t.Fatal(err)
	}
	sum := dirSum(t, backup)

	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{filepath.Join(root, "absent"), empty} {
		res, err := Restore(backup, target)
		if err != nil {
			t.Fatalf("Restore into %s: %v", target, err)
		}
		if res.Accounts != 1 || res.Channels != 1 || res.Topics != 1 {
			t.Errorf("Restore into %s loaded %+v, want 1 account, channel and topic", target, res)
		}
		checkPrivate(t, target, "restored "+target)
		r := openTest(t, testOptions(t, target))
		if got := ticks(mustRead(t, r, "r-ch", nil, 10)); got != "t1|cursor=1" {
			t.Errorf("restored channel: %s", got)
		}
		if got := cfIDs(mustCFRead(t, r, "r/x", 0, 0, 10)); got != "1|cursor=1 last=1" {
			t.Errorf("restored topic: %s", got)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirSum(t, backup); got != sum {
		t.Fatal("Restore changed the backup")
	}

	full := filepath.Join(root, "absent") // restored above: not empty
	before := dirSum(t, full)
	if _, err := Restore(backup, full); err == nil {
		t.Fatal("Restore overwrote a non-empty data directory")
	}
	if dirSum(t, full) != before {
		t.Fatal("a refused Restore changed the target")
	}
	if _, err := Restore(t.TempDir(), filepath.Join(root, "fromnothing")); err == nil {
		t.Fatal("Restore accepted an empty directory as a backup")
	}
	if _, err := os.Lstat(filepath.Join(root, "fromnothing")); err == nil {
		t.Fatal("a refused Restore left a data directory")
	}
	leftovers, _ := filepath.Glob(filepath.Join(root, ".*restore-*"))
	if len(leftovers) > 0 {
		t.Fatalf("Restore left staging directories: %v", leftovers)
	}
}

// dirSum hashes the names and contents of the files directly in dir.
func dirSum(t *testing.T, dir string) [32]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&all, "%s %d\n", e.Name(), len(b))
		all.Write(b)
	}
	return sha256.Sum256(all.Bytes())
}

// TestRestoreKeepsTargetOwner: root restoring into an empty directory
// made for the server's user leaves the data directory to that user.
func TestRestoreKeepsTargetOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another uid")
	}
	s := openTest(t, testOptions(t, ""))
	mustAppend(t, s, "o-ch", "t1", "x")
	backup := filepath.Join(t.TempDir(), "backup")
	if err := s.Checkpoint(backup); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(target, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(backup, target); err != nil {
		t.Fatal(err)
	}
	for path := range modesOf(t, backup) {
		info, err := os.Lstat(filepath.Join(backup, path))
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != 0 {
			t.Errorf("the backup's %s now belongs to uid %d", path, st.Uid)
		}
	}
	for path, m := range modesOf(t, target) {
		info, err := os.Lstat(filepath.Join(target, path))
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s (%v) belongs to %d:%d, want 65534:65534", path, m, st.Uid, st.Gid)
		}
	}
}
