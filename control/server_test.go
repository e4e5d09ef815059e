package control

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halleypush/halley/persist"
)

// TestMain lets the test binary act as an control-socket client run as
// another user (see TestAdminSocketRefusesOtherUsers).
func TestMain(m *testing.M) {
	if sock := os.Getenv("HALLEY_TEST_CONTROL_CLIENT"); sock != "" {
		os.Exit(controlClientMain(sock, os.Stdout))
	}
	os.Exit(m.Run())
}

// controlClientMain sends one add over the control socket and prints what
// comes back (nothing when the server refuses the peer).
func controlClientMain(sock string, out io.Writer) int {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, `{"op":"add","name":"mallory"}`)
	b, _ := io.ReadAll(bufio.NewReader(c))
	out.Write(b)
	return 0
}

// TestAdminSocketRefusesOtherUsers (C-14): even with the socket and its
// directory made world-accessible (a loosened umask, a copied tree), a
// peer running as another user gets no answer, while root does. The
// client is this test binary, copied where uid 65534 may run it and
// started as that uid through the kernel's own credential switch, so the
// server sees a real foreign peer in SO_PEERCRED.
func TestAdminSocketRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	// Not t.TempDir: its parent is 0700, which would stop the foreign
	// user before the server's check could.
	dir, err := os.MkdirTemp("", "halley-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "control-client")
	if err := os.WriteFile(client, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := persist.Open(persist.Options{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.AddAccount("alice"); err != nil {
		t.Fatal(err)
	}
	sock := SocketPath(dir)
	srv, err := Listen(sock, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}

	run := func(uid uint32) string {
		cmd := exec.Command(client)
		cmd.Env = append(os.Environ(), "HALLEY_TEST_CONTROL_CLIENT="+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client as uid %d: %v", uid, err)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run(65534); out != "" {
		t.Fatalf("a peer of uid 65534 got an answer: %s", out)
	}
	if _, ok := store.AccountByName([]byte("mallory")); ok {
		t.Fatal("a peer of uid 65534 added an account")
	}
	out := run(0)
	var rep Reply
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Error != "" || len(rep.Accounts) != 1 {
		t.Fatalf("root's add: %q (%v)", out, err)
	}
}
