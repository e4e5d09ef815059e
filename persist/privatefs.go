package persist

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// C-14: the data directory is 0700 and its files 0600, whatever the
// process umask, which is left alone. privateFS creates every directory
// and file Pebble asks for with those modes, and tightenModes fixes a
// directory written before (or by hand) at Open.

// privateFS is vfs.Default, except that directories are created 0700 and
// files 0600. A file is created by os.OpenFile with mode 0600 before
// Pebble opens it, so it is never readable by others, not even for a
// moment; Pebble then opens the existing file as it would have. Its WAL
// files are written ahead in zeros (walfill.go).
type privateFS struct{ vfs.FS }

func (p privateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	// vfs.Default.Create replaces an existing file with a new one (it
	// removes it first, so that a hard link elsewhere keeps its content).
	if err := os.Remove(name); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if err := createPrivate(name, os.O_TRUNC); err != nil {
		return nil, err
	}
	f, err := p.FS.OpenReadWrite(name, category)
	return writeAheadIfWAL(f, err, category)
}

func (p privateFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := createPrivate(name, 0); err != nil {
		return nil, err
	}
	return p.FS.OpenReadWrite(name, category, opts...)
}

func (p privateFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.ReuseForWrite(oldname, newname, category)
	return writeAheadIfWAL(f, err, category)
}

func (p privateFS) Lock(name string) (io.Closer, error) {
	if err := createPrivate(name, 0); err != nil {
		return nil, err
	}
	return p.FS.Lock(name)
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error {
	return p.FS.MkdirAll(dir, 0o700)
}

func (p privateFS) Unwrap() vfs.FS { return p.FS }

// createPrivate creates name with mode 0600 if it does not exist (an
// existing file keeps its mode; tightenModes handled it at Open).
func createPrivate(name string, flag int) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|syscall.O_CLOEXEC|flag, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// tightenModes clears the group and other permission bits of dir and of
// everything under it (a directory 0755 becomes 0700, a file 0644 0600).
// A symbolic link is not followed, except dir itself. Nothing to do when
// dir does not exist yet.
func tightenModes(dir string) error {
	root, err := filepath.EvalSymlinks(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			return os.Chmod(path, perm&^0o077)
		}
		return nil
	})
}
