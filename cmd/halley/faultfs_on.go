//go:build halley_faultfs

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// A test-only build (tag halley_faultfs, never shipped): the store's disk
// obeys two control files in $HALLEY_FAULTFS, so a test can fault the WAL
// of the real binary from outside (storagefault_test.go). While "stall"
// exists, a WAL sync blocks; while "fail" exists, a WAL sync fails with
// EIO.
var storageFaults = func() vfs.FS {
	dir := os.Getenv("HALLEY_FAULTFS")
	if dir == "" {
		return nil
	}
	return errorfs.Wrap(vfs.Default, walFaults{dir})
}

type walFaults struct{ dir string }

func (w walFaults) String() string { return "walFaults(" + w.dir + ")" }

func (w walFaults) exists(name string) bool {
	_, err := os.Stat(filepath.Join(w.dir, name))
	return err == nil
}

func (w walFaults) MaybeError(op errorfs.Op) error {
	if !strings.HasSuffix(op.Path, ".log") {
		return nil
	}
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		for w.exists("stall") {
			time.Sleep(5 * time.Millisecond)
		}
		if w.exists("fail") {
			return syscall.EIO
		}
	}
	return nil
}
