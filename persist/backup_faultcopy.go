//go:build halley_fault_backupcopy

package persist

import (
	"os"
	"path/filepath"
	"strings"
)

// checkpoint, built with -tags halley_fault_backupcopy, plants the backup
// bug the backup test must catch: instead of a Pebble checkpoint it copies
// the data directory's files as a naive file-level backup that takes the
// WAL for a disposable log would (e.g. `rsync --exclude '*.log'`): the
// sstables, MANIFEST, OPTIONS and markers, without the WAL. Every
// acknowledged write still in the memtable (up to 64 MiB of the newest
// ones) is missing from such a backup, which nevertheless opens cleanly.
// Never ship it.
func (s *Store) checkpoint(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".log") || e.Name() == "LOCK" {
			continue
		}
		err := copyFile(filepath.Join(s.opts.Dir, e.Name()), filepath.Join(dir, e.Name()))
		if err != nil && !os.IsNotExist(err) { // deleted since the listing: skipped, as rsync would
			return err
		}
	}
	return nil
}
