package persist

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Backups. A backup is a Pebble checkpoint of the data directory: a
// directory that persist.Open (and so `halley serve --data`) opens as it
// is, holding every write acknowledged before the checkpoint began.
//
// Why a checkpoint and not a copy of the files: a running Pebble deletes
// and renames files as it flushes, compacts and recycles its WAL, so a
// copy made file by file can hold a MANIFEST naming tables it does not
// have, or miss the WAL that holds the newest writes (see
// backup_faultcopy.go, the planted fault the backup test catches). A
// checkpoint pins the current version's files, links the immutable
// sstables (copies them across filesystems), copies the MANIFEST up to
// that version and copies the WAL.
//
// Everything Halley keeps is in Pebble (accounts, channel and topic
// metadata, messages, pushes, replay records), so the checkpoint is the
// whole backup. What else lies in the data directory stays out: LOCK
// (Pebble's lock, taken again by whoever opens the copy) and the control
// socket (admin.sock), which a server recreates.

// Checkpoint writes a consistent backup of the Store to dir, which must
// not exist (its parent must) and must not lie inside the data directory.
// Safe from any goroutine while writes run; it does not stop them.
//
// The backup point is the call: every write acknowledged before
// Checkpoint is called is in the backup, because an acknowledgement
// follows the WAL's fsync (C-09) and the checkpoint copies the WAL as it
// stands after flushing and syncing it (as pebble.WithFlushedWAL does,
// which also covers writes applied but not yet synced under SyncNone). Writes
// acknowledged while the checkpoint runs may or may not be in it, whole.
//
// With the default disk, dir is created 0700 and its files are 0600
// (C-14), like the data directory; sstables are hard links when dir is on
// the same filesystem, which costs no space until compactions replace the
// originals. On an error nothing is left at dir.
//
// Like a read, Checkpoint must not run concurrently with or after Close;
// it returns ErrClosed once Close has begun, and an error wrapping
// ErrStorage when the Store has failed (its memtable may hold a batch
// the disk refused).
func (s *Store) Checkpoint(dir string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("persist: checkpoint refused: %w", *p)
	}
	if err := checkBackupDest(dir, s.opts.Dir); err != nil {
		return err
	}
	if err := s.checkpoint(dir); err != nil {
		return fmt.Errorf("persist: checkpoint %s: %w", dir, err)
	}
	if s.opts.FS == nil {
		// privateFS created everything 0700/0600 already; links share the
		// data directory's inodes, which Open tightened. This makes the
		// mode a property of the backup rather than of that reasoning.
		if err := tightenModes(dir); err != nil {
			return fmt.Errorf("persist: checkpoint %s: %w", dir, err)
		}
	}
	return nil
}

// pebbleCheckpoint is the checkpoint of a normal build: Pebble's, after
// flushing and syncing the WAL. The flush is pebble.WithFlushedWAL done by
// hand (Pebble documents the two as equivalent) so that it alone runs
// under guard: it is a commit, whose failure on the data disk Pebble
// reports through Fatalf (pebbleLogger panics) and which is a storage
// error; a failure to write the backup is not one.
func (s *Store) pebbleCheckpoint(dir string) error {
	if err := s.guard(func() error { return s.db.LogData(nil, pebble.Sync) }); err != nil {
		return fmt.Errorf("flush the WAL: %w", err)
	}
	return s.db.Checkpoint(dir)
}

// checkBackupDest refuses a destination that exists (a backup never
// overwrites), whose parent does not exist (a typo should not create a
// tree), or that lies inside dataDir (Pebble would find it there).
func checkBackupDest(dest, dataDir string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("persist: backup destination %s: %w", dest, os.ErrExist)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("persist: backup destination: %w", err)
	}
	parent, err := realPath(filepath.Dir(dest))
	if err != nil {
		return fmt.Errorf("persist: backup destination's parent: %w", err)
	}
	data, err := realPath(dataDir)
	if err != nil {
		return fmt.Errorf("persist: data directory: %w", err)
	}
	if within(parent, data) {
		return fmt.Errorf("persist: backup destination %s lies inside the data directory %s", dest, dataDir)
	}
	return nil
}

// realPath is path made absolute, without symbolic links.
func realPath(path string) (string, error) {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}

// within reports whether path is dir or below it (both absolute, clean).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// RestoreResult says what Restore put in place.
type RestoreResult struct {
	// Accounts, Channels and Topics count what the restored store loaded.
	Accounts, Channels, Topics int
	// Migrated lists the accounts the verifying Open converted to
	// separate keys (Store.Migrated): their new private api_keys must be
	// shown once.
	Migrated []Account
}

// Restore makes dataDir a copy of the backup in backupDir. dataDir must
// be absent or an empty directory (a non-empty one, which includes one a
// server holds, is refused), and its parent must exist. backupDir is not
// changed: its files are copied (sstables hard-linked when on the same
// filesystem; they are immutable, while Pebble reuses WAL and MANIFEST
// files) into a new directory beside dataDir, which Open must open (every
// account, channel and topic loads) before it replaces dataDir. An error
// before that last step leaves dataDir as it was.
//
// The directory and files are created 0700/0600 (C-14). They belong to
// the caller or, when dataDir existed (empty) with another owner, to that
// owner (which only root may do; the sstables are then copied, not
// linked, so that the backup's files keep their owner).
func Restore(backupDir, dataDir string) (RestoreResult, error) {
	var res RestoreResult
	dataDir = filepath.Clean(dataDir)
	if err := checkRestoreTarget(dataDir); err != nil {
		return res, err
	}
	stage, err := os.MkdirTemp(filepath.Dir(dataDir), "."+filepath.Base(dataDir)+".restore-")
	if err != nil {
		return res, fmt.Errorf("persist: restore: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.RemoveAll(stage)
		}
	}()
	// An empty target makes way below; the restored directory takes over
	// its owner, as an operator may have made it for the server's user.
	// Then the sstables are copied, not linked: a link shares its inode,
	// owner included, with the backup.
	var owner *syscall.Stat_t
	if info, err := os.Stat(dataDir); err == nil {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
			owner = st
		}
	}
	if err := copyBackup(backupDir, stage, owner == nil); err != nil {
		return res, fmt.Errorf("persist: restore from %s: %w", backupDir, err)
	}
	if res, err = verifyBackup(stage); err != nil {
		return res, fmt.Errorf("persist: restore from %s: %w", backupDir, err)
	}
	if owner != nil {
		if err := chownTree(stage, int(owner.Uid), int(owner.Gid)); err != nil {
			return res, fmt.Errorf("persist: restore: %w", err)
		}
	}
	// Remove refuses a directory that is not empty, and Rename one that
	// exists, so a server that started on dataDir meanwhile is never
	// overwritten.
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("persist: restore: %w", err)
	}
	if err := os.Rename(stage, dataDir); err != nil {
		return res, fmt.Errorf("persist: restore: move into place: %w", err)
	}
	keep = true
	if err := syncDir(filepath.Dir(dataDir)); err != nil {
		return res, fmt.Errorf("persist: restore: %w", err)
	}
	return res, nil
}

// checkRestoreTarget refuses a data directory that holds anything.
func checkRestoreTarget(dataDir string) error {
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("persist: restore target: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("persist: restore target %s is not empty (refusing to overwrite a data directory)", dataDir)
	}
	return nil
}

// copyBackup copies the files of a checkpoint into the empty directory
// stage, 0600 each, and syncs them; with link, sstables are hard-linked
// where the filesystem allows.
func copyBackup(src, stage string, link bool) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == "LOCK" || e.Name() == "admin.sock" {
			continue // not data: a copied data directory may hold them
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file: not a Halley backup", filepath.Join(src, e.Name()))
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(stage, e.Name())
		if link && strings.HasSuffix(e.Name(), ".sst") {
			if os.Link(from, to) == nil {
				continue
			}
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	desc, err := pebble.Peek(stage, vfs.Default)
	if err != nil {
		return err
	}
	if !desc.Exists {
		return fmt.Errorf("no Pebble database there: not a Halley backup")
	}
	return nil
}

// copyFile copies from to a new file to, created 0600, and syncs it.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// verifyBackup opens the staged copy as a server would and counts what
// it loaded.
func verifyBackup(dir string) (RestoreResult, error) {
	s, err := Open(Options{Dir: dir, SweepInterval: -1})
	if err != nil {
		return RestoreResult{}, err
	}
	res := RestoreResult{Accounts: len(s.Accounts()), Migrated: s.Migrated()}
	s.chanMu.RLock()
	res.Channels = len(s.channels)
	s.chanMu.RUnlock()
	s.topicMu.RLock()
	res.Topics = len(s.topics)
	s.topicMu.RUnlock()
	if err := s.Close(); err != nil {
		return res, err
	}
	return res, syncDir(dir)
}

// chownTree gives dir and everything in it to uid:gid (only root may).
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
