package persist

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// modesOf returns the permission bits of dir and of everything under it,
// by path relative to dir.
func modesOf(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	modes := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		modes[rel] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return modes
}

// checkPrivate fails unless dir is a directory 0700 and every file under
// it is a regular file 0600.
func checkPrivate(t *testing.T, dir, when string) {
	t.Helper()
	modes := modesOf(t, dir)
	if len(modes) < 3 {
		t.Fatalf("%s: only %d entries in the data directory", when, len(modes))
	}
	for path, m := range modes {
		switch {
		case m.IsDir() && m.Perm() != 0o700:
			t.Errorf("%s: directory %s is %v, want 0700", when, path, m.Perm())
		case m.IsRegular() && m.Perm() != 0o600:
			t.Errorf("%s: file %s is %v, want 0600", when, path, m.Perm())
		case !m.IsDir() && !m.IsRegular():
			t.Errorf("%s: %s is %v", when, path, m)
		}
	}
}

// TestDataDirPrivate (C-14): a data directory Open creates is 0700 and
// every file Pebble creates in it (WAL, tables, MANIFEST, OPTIONS, LOCK,
// markers) is 0600, although the umask would allow 0755 and 0644; a
// directory left looser is tightened at Open.
func TestDataDirPrivate(t *testing.T) {
	// The test needs a umask that lets group and others read; the store
	// itself never touches it. No test in this package runs in parallel.
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "data")
	opts := testOptions(t, dir)
	opts.MaxBatch = 1
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAccount("alice"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		mustAppend(t, s, "alice-ch", fmt.Sprint("t", i), "x")
	}
	if err := s.db.Flush(); err != nil { // an sstable too
		t.Fatal(err)
	}
	checkPrivate(t, dir, "open")
	t.Logf("data directory: %v", modesOf(t, dir))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir, "closed")

	// Loosen everything, as an earlier version under umask 022 left it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, m := range modesOf(t, dir) {
		if m.IsRegular() {
			if err := os.Chmod(filepath.Join(dir, path), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	s = openTest(t, opts)
	checkPrivate(t, dir, "reopened")
	if got := ticks(mustRead(t, s, "alice-ch", nil, 1)); got != "t0|cursor=1 more" {
		t.Fatalf("data after reopen: %s", got)
	}
}
