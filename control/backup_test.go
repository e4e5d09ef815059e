package control

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/halleypush/halley/persist"
)

func openStore(t *testing.T, dir string) *persist.Store {
	t.Helper()
	store, err := persist.Open(persist.Options{Dir: dir, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func listen(t *testing.T, dir string, store *persist.Store) *Server {
	t.Helper()
	srv, err := Listen(SocketPath(dir), store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestBackupThroughSocket: a running server writes the backup a client
// asks for; a relative or existing destination is refused; the backup
// opens with the server's accounts and holds no control socket.
func TestBackupThroughSocket(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	defer store.Close()
	if _, err := store.AddAccount("alice"); err != nil {
		t.Fatal(err)
	}
	srv := listen(t, dir, store)
	defer srv.Close()
	if !Running(dir) {
		t.Fatal("Running: no server seen")
	}

	dest := filepath.Join(t.TempDir(), "backup")
	for _, bad := range []string{"relative/backup", dir} {
		rep, reached, err := Call(SocketPath(dir), Request{Op: "backup", Dest: bad})
		if !reached || err != nil || rep.Error == "" {
			t.Errorf("backup to %q: %+v %v %v, want refused", bad, rep, reached, err)
		}
	}
	res, err := Do(dir, Request{Op: "backup", Dest: dest})
	if err != nil || res.Error != "" || !res.Served {
		t.Fatalf("backup: %+v %v", res, err)
	}
	res, err = Do(dir, Request{Op: "backup", Dest: dest})
	if err != nil || !strings.Contains(res.Error, "exists") {
		t.Fatalf("second backup to the same destination: %+v %v, want refused", res, err)
	}
	if _, err := os.Lstat(filepath.Join(dest, SocketName)); err == nil {
		t.Fatal("the backup holds the control socket")
	}
	b := openStore(t, dest)
	defer b.Close()
	if _, ok := b.AccountByName([]byte("alice")); !ok {
		t.Fatal("the backup lost the account")
	}
}

// TestDoOpensStoppedDirectory: with no server, Do opens the data
// directory itself, and the change is there for the next opener.
func TestDoOpensStoppedDirectory(t *testing.T) {
	dir := t.TempDir()
	if Running(dir) {
		t.Fatal("Running: a server seen where none runs")
	}
	res, err := Do(dir, Request{Op: "add", Name: "bob"})
	if err != nil || res.Error != "" || res.Served || len(res.Accounts) != 1 || res.Accounts[0].APISecret == "" {
		t.Fatalf("add: %+v %v", res, err)
	}
	dest := filepath.Join(t.TempDir(), "backup")
	if res, err := Do(dir, Request{Op: "backup", Dest: dest}); err != nil || res.Error != "" {
		t.Fatalf("backup of a stopped directory: %+v %v", res, err)
	}
	b := openStore(t, dest)
	defer b.Close()
	if _, ok := b.AccountByName([]byte("bob")); !ok {
		t.Fatal("the backup of the stopped directory lost the account")
	}
}

// TestCloseCutsSilentPeer: a peer that connects and sends nothing does
// not hold Close (which the server's shutdown waits for).
func TestCloseCutsSilentPeer(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	defer store.Close()
	srv := listen(t, dir, store)
	c, err := net.Dial("unix", SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"op":`)); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := os.Lstat(SocketPath(dir)); err == nil {
		t.Fatal("Close left the socket file")
	}
}
