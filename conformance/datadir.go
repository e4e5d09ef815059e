package conformance

import (
	"io/fs"
	"os"
	"path/filepath"
)

// C-14: the data directory holds every api_secret and private api_key, so
// nothing in it may be readable by another local user: the directory (and
// any below it) is 0700, every file 0600, and the admin socket 0600 or
// stricter. The suite reads the modes through --data, so it must run on
// the server's host.

func dataDirCases() []ruleCase {
	return []ruleCase{
		{rule: "C-14", what: "the data directory (--data) and directories below it 0700, its files 0600, sockets 0600 or stricter", run: checkDataDir},
	}
}

func checkDataDir(t *caseT) {
	dir := t.cfg.Wire.DataDir
	if dir == "" {
		t.Skipf("pass --data DIR, the server's data directory on this host")
	}
	// A write first, so that the store has written files of every kind it
	// writes at runtime (WAL, tables after a flush, the manifest).
	t.writeMsg(t.qname(), "c-14", "")
	var files, sockets int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		m := info.Mode()
		switch {
		case m.IsDir():
			if m.Perm() != 0o700 {
				t.Fatalf("%s is a directory of mode %04o, want 0700", path, m.Perm())
			}
		case m.IsRegular():
			files++
			if m.Perm() != 0o600 {
				t.Fatalf("%s is a file of mode %04o, want 0600", path, m.Perm())
			}
		case m&fs.ModeSocket != 0:
			sockets++
			if m.Perm()&^0o600 != 0 {
				t.Fatalf("%s is a socket of mode %04o, want 0600 or stricter", path, m.Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("--data %s: %v", dir, err)
	}
	if files == 0 {
		t.Fatalf("--data %s holds no file: is it the server's data directory?", dir)
	}
	if sockets == 0 {
		t.Notef("no socket under --data (the admin socket's mode)")
	}
	t.Notef("the admin socket refusing peers of another uid (needs a second user; control TestAdminSocketRefusesOtherUsers checks it)")
}
