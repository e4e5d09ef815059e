package persist

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble's WAL is synced after every group commit (C-09), and what such
// an fdatasync(2) costs depends on how the file is written. Appending
// past the file's end (even into space fallocate reserved) makes every
// sync write the inode too: the file's size changed, and on ext4 the
// reserved extent must be marked written. Overwriting bytes the file
// already holds only writes the data. Pebble recycles old WAL files for
// this reason (wal/standalone_manager.go), but a WAL created fresh, as
// every one is until the first memtable flush after a start, is
// appended to. Measured on this repository's test machine (ext4,
// 2,000 fdatasyncs of a 100-byte write each): p50 167–220 µs appending,
// 161–165 µs into fallocated space, 120–129 µs overwriting.
//
// zeroAheadFile makes a fresh WAL an overwritten one: before Pebble's
// writes reach the end of what the file holds, it writes zeros a chunk
// ahead (walFillChunk), so that only one sync in a chunk changes the
// file's size. The zeros are what Pebble's WAL reader takes for the end
// of the log (record.ErrZeroedChunk: "usually occurs due to log file
// preallocation"), as it takes an older log's bytes in a recycled file.
// They cost a second write of the WAL's bytes for a WAL created fresh
// (the first after a start, or one Pebble had no file to recycle for);
// a recycled WAL is already long enough.

// walCategory is the write category Pebble creates its WAL files with.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

// walFillChunk is how far ahead of Pebble's writes the zeros go, and
// walZeroBuf the zeros written at a time (held while the WAL is open).
const (
	walFillChunk = 256 << 10
	walZeroBuf   = 64 << 10
)

// zeroAheadFile is a WAL file (see above). Pebble writes a WAL
// sequentially from offset 0 on one goroutine (its LogWriter's flush
// loop), so off and filled need no lock.
type zeroAheadFile struct {
	vfs.File
	off    int64  // bytes Pebble has written, from offset 0
	filled int64  // the file's size: every byte below it exists on disk
	zeros  []byte // walZeroBuf zero bytes, allocated at the first fill
	err    error  // a fill that failed: the file is appended to as before
}

// writeAheadIfWAL passes on what Pebble's file system returned for a
// file opened to be written with category: a WAL in a zeroAheadFile,
// any other file (or an error) as it is.
func writeAheadIfWAL(f vfs.File, err error, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err != nil || category != walCategory {
		return f, err
	}
	return newZeroAheadFile(f)
}

// newZeroAheadFile wraps a WAL file Pebble is about to write from its
// start (created, or recycled with an older log's bytes in it).
func newZeroAheadFile(f vfs.File) (vfs.File, error) {
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("persist: stat WAL: %w", err)
	}
	return &zeroAheadFile{File: f, filled: st.Size()}, nil
}

func (f *zeroAheadFile) Write(p []byte) (int, error) {
	if end := f.off + int64(len(p)); end > f.filled && f.err == nil {
		f.fill(end)
	}
	n, err := f.File.Write(p)
	f.off += int64(n)
	return n, err
}

// fill writes zeros from filled to a chunk past end. A failure is kept
// and not returned: the write itself is what must succeed, and it may
// (an append, as without this file), while a disk that is really failing
// fails it too.
func (f *zeroAheadFile) fill(end int64) {
	if f.zeros == nil {
		f.zeros = make([]byte, walZeroBuf)
	}
	to := (end/walFillChunk + 1) * walFillChunk
	for f.filled < to {
		n, err := f.File.WriteAt(f.zeros[:min(int64(len(f.zeros)), to-f.filled)], f.filled)
		f.filled += int64(n)
		if err != nil {
			f.err = err
			return
		}
	}
}
