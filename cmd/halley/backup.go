package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/halleypush/halley/control"
	"github.com/halleypush/halley/persist"
)

const backupUsage = `usage: halley backup  [--data DIR] DEST     write a consistent backup of DIR to DEST (must not exist)
       halley restore [--data DIR] BACKUP   make the empty or absent DIR a copy of BACKUP
A running server on DIR writes the backup itself (through its control socket);
a stopped DIR is opened directly. See docs/backup.md.
`

// parseDirAndPath reads [--data DIR] PATH, the flag before or after PATH.
func parseDirAndPath(name string, args []string, stderr io.Writer) (dir, path string, ok bool) {
	fs := flag.NewFlagSet("halley "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage) }
	fs.StringVar(&dir, "data", "./data", "data directory")
	var paths []string
	for {
		// Parse stops at the first argument that is not a flag: take it
		// as PATH and parse what follows it.
		if fs.Parse(args) != nil {
			return "", "", false
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(paths) != 1 {
		fs.Usage()
		return "", "", false
	}
	return dir, paths[0], true
}

// backupMain implements `halley backup`: the checkpoint is written by the
// server running on the data directory (so that it holds every write that
// server acknowledged before the command started) or, with none, by
// opening the stopped directory.
func backupMain(args []string, stdout, stderr io.Writer) int {
	dir, dest, ok := parseDirAndPath("backup", args, stderr)
	if !ok {
		return 2
	}
	// The server resolves the path in its own working directory.
	dest, err := filepath.Abs(dest)
	if err != nil {
		fmt.Fprintln(stderr, "halley backup:", err)
		return 2
	}
	// Opening a directory that does not hold a store would create one,
	// and back up nothing.
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		fmt.Fprintf(stderr, "halley backup: %s is not a data directory (absent or empty)\n", dir)
		return 1
	}
	if _, err := os.Lstat(dest); err == nil {
		fmt.Fprintf(stderr, "halley backup: %s exists; a backup never overwrites\n", dest)
		return 1
	}
	start := time.Now()
	res, err := control.Do(dir, control.Request{Op: "backup", Dest: dest})
	announceMigrated(stderr, res.Migrated)
	if err == nil && res.Error != "" {
		err = errors.New(res.Error)
	}
	if err != nil {
		fmt.Fprintln(stderr, "halley backup:", err)
		return 1
	}
	how := "from the stopped data directory"
	if res.Served {
		how = "by the running server"
		// A sandboxed service (systemd's PrivateTmp, a mount namespace)
		// writes into a filesystem view this process does not share.
		if _, err := os.Stat(dest); err != nil {
			fmt.Fprintf(stderr, "halley backup: the server reports %s written, but it is not here (%v): the service sees another filesystem (PrivateTmp or a mount namespace); choose a directory both see, see docs/backup.md\n", dest, err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "backup of %s written to %s %s in %v; it holds every write acknowledged before the command started\n",
		dir, dest, how, time.Since(start).Round(time.Millisecond))
	return 0
}

// restoreMain implements `halley restore`.
func restoreMain(args []string, stdout, stderr io.Writer) int {
	dir, backup, ok := parseDirAndPath("restore", args, stderr)
	if !ok {
		return 2
	}
	if control.Running(dir) {
		fmt.Fprintf(stderr, "halley restore: a server is running on %s; stop it, and restore into an empty or absent directory\n", dir)
		return 1
	}
	if control.Running(backup) {
		// Copying a live data directory is the naive backup that loses
		// writes (docs/backup.md).
		fmt.Fprintf(stderr, "halley restore: %s is the data directory of a running server, not a backup; take one with halley backup --data %s DEST\n", backup, backup)
		return 1
	}
	res, err := persist.Restore(backup, dir)
	announceMigrated(stderr, res.Migrated)
	if err != nil {
		fmt.Fprintln(stderr, "halley restore:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s into %s: %d accounts, %d channels, %d topics\n", backup, dir, res.Accounts, res.Channels, res.Topics)
	return 0
}
