package persist

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestZeroAheadFile: writes land as written, in order, from offset 0;
// the file is always a whole number of chunks and at most a chunk ahead,
// and what lies ahead is zeros.
func TestZeroAheadFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "000001.log")
	raw, err := vfs.Default.Create(name, walCategory)
	if err != nil {
		t.Fatal(err)
	}
	f, err := newZeroAheadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i, n := range []int{100, 7, walFillChunk - 107, 1, walFillChunk, 3*walFillChunk + 5, 64} {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		if k, err := f.Write(p); k != n || err != nil {
			t.Fatalf("write %d: %d, %v", n, k, err)
		}
		want = append(want, p...)
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if size := st.Size(); size%walFillChunk != 0 || size < int64(len(want)) || size > int64(len(want))+walFillChunk {
			t.Fatalf("after %d bytes the file holds %d: want whole chunks, at most one ahead", len(want), size)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(want)], want) {
		t.Fatal("the file does not hold what was written")
	}
	if tail := got[len(want):]; len(bytes.Trim(tail, "\x00")) != 0 {
		t.Fatal("the bytes ahead of the writes are not zeros")
	}
}

// failingWriteAt is a file whose WriteAt fails, as a full disk would.
type failingWriteAt struct{ vfs.File }

func (failingWriteAt) WriteAt([]byte, int64) (int, error) { return 0, errors.New("no space left") }

// TestZeroAheadFileFillFails: when the zeros cannot be written, Pebble's
// own writes still go through, appended as without zeroAheadFile.
func TestZeroAheadFileFillFails(t *testing.T) {
	name := filepath.Join(t.TempDir(), "000001.log")
	raw, err := vfs.Default.Create(name, walCategory)
	if err != nil {
		t.Fatal(err)
	}
	f, err := newZeroAheadFile(failingWriteAt{raw})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if n, err := f.Write([]byte("record")); n != 6 || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	_ = f.Close()
	if got, _ := os.ReadFile(name); string(got) != "recordrecordrecord" {
		t.Fatalf("file %q", got)
	}
}

// walFiles returns the sizes of the WAL files in dir.
func walFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = info.Size()
		}
	}
	return out
}

// TestStoreWALWrittenAhead: the Store's WAL is written ahead in zeros,
// so that its group commits overwrite the file instead of growing it
// (walfill.go says why). Without zeroAheadFile in privateFS, the WAL is
// exactly as long as its records.
func TestStoreWALWrittenAhead(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	for i := range 50 {
		mustAppend(t, s, "alice-ch", fmt.Sprint("t", i), "body")
	}
	wals := walFiles(t, opts.Dir)
	if len(wals) == 0 {
		t.Fatal("no WAL file")
	}
	for name, size := range wals {
		if size == 0 || size%walFillChunk != 0 {
			t.Fatalf("WAL %s is %d bytes: want whole chunks of %d", name, size, walFillChunk)
		}
	}
}

// TestCrashImageWithZeroTail: a copy of the data directory taken while
// the Store is open, as a process killed after its acknowledged writes
// leaves it, opens with every acknowledged write: Pebble's recovery takes
// the zeros ahead of the WAL's records for the log's end.
func TestCrashImageWithZeroTail(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	const n = 300
	for i := range n {
		mustAppend(t, s, fmt.Sprint("alice-ch", i%7), fmt.Sprint("t", i), fmt.Sprint("body", i))
	}
	image := t.TempDir()
	copyTree(t, opts.Dir, image)
	zeros := false
	for name, size := range walFiles(t, image) {
		b, err := os.ReadFile(filepath.Join(image, name))
		if err != nil {
			t.Fatal(err)
		}
		zeros = zeros || (size > 0 && b[size-1] == 0)
	}
	if !zeros {
		t.Fatal("the image's WAL has no zeros ahead of its records: the test would not exercise them")
	}
	s2 := openTest(t, testOptions(t, image))
	for c := range 7 {
		q := fmt.Sprint("alice-ch", c)
		r := mustRead(t, s2, q, nil, 0)
		want := 0
		for i := c; i < n; i += 7 {
			want++
		}
		if len(r.Messages) != want {
			t.Fatalf("%s: %d messages after recovery, want %d", q, len(r.Messages), want)
		}
		for k, m := range r.Messages {
			if i := c + 7*k; string(m.Tick) != fmt.Sprint("t", i) || string(m.Body) != fmt.Sprint("body", i) {
				t.Fatalf("%s message %d: %s %s", q, k, m.Tick, m.Body)
			}
		}
	}
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrashImageAfterWALRecycling: the same through Pebble's WAL
// rotations, the second of which reuses the first WAL's file (recycled,
// with an older log's records in it, and written ahead again past them).
func TestCrashImageAfterWALRecycling(t *testing.T) {
	opts := testOptions(t, "")
	s := openTest(t, opts)
	const n = 600
	for i := range n {
		mustAppend(t, s, "alice-ch", fmt.Sprint("t", i), fmt.Sprint("body", i))
		if i == 200 || i == 400 {
			// A flush rotates the WAL; the one before becomes obsolete
			// and Pebble keeps its file for the next rotation.
			if err := s.db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	image := t.TempDir()
	copyTree(t, opts.Dir, image)
	s2 := openTest(t, testOptions(t, image))
	r := mustRead(t, s2, "alice-ch", nil, n)
	if len(r.Messages) != n {
		t.Fatalf("%d messages after recovery, want %d", len(r.Messages), n)
	}
	for i, m := range r.Messages {
		if string(m.Tick) != fmt.Sprint("t", i) || string(m.Body) != fmt.Sprint("body", i) {
			t.Fatalf("message %d: %s %s", i, m.Tick, m.Body)
		}
	}
}
