package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// TestMain lets the test binary act as an admin-socket client run as
// another user (see TestAdminSocketRefusesOtherUsers).
func TestMain(m *testing.M) {
	if sock := os.Getenv("HALLEY_TEST_ADMIN_CLIENT"); sock != "" {
		os.Exit(adminClientMain(sock, os.Stdout))
	}
	os.Exit(m.Run())
}

// adminClientMain sends one add over the admin socket and prints what
// comes back (nothing when the server refuses the peer).
func adminClientMain(sock string, out io.Writer) int {
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
	dir, err := os.MkdirTemp("", "halley-admin-")
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
	client := filepath.Join(dir, "admin-client")
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
	sock := filepath.Join(dir, adminSocketName)
	admin, err := startAdmin(sock, store, newLogger(&bytes.Buffer{}, "error"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}

	run := func(uid uint32) string {
		cmd := exec.Command(client)
		cmd.Env = append(os.Environ(), "HALLEY_TEST_ADMIN_CLIENT="+sock)
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
	var rep adminReply
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Error != "" || len(rep.Accounts) != 1 {
		t.Fatalf("root's add: %q (%v)", out, err)
	}
}

// TestAccountArgs checks the CLI's grammar: verbs, flags in any place,
// and the combinations refused.
func TestAccountArgs(t *testing.T) {
	ok := []struct {
		args []string
		want adminRequest
	}{
		{[]string{"add", "bob"}, adminRequest{Op: "add", Name: "bob"}},
		{[]string{"--data", "d", "list"}, adminRequest{Op: "list"}},
		{[]string{"set", "bob", "--max-listeners-per-ip=5"}, adminRequest{Op: "set", Name: "bob", Max: 5}},
		{[]string{"set", "bob", "--require-signature", "v2"}, adminRequest{Op: "set", Name: "bob", Signature: "v2"}},
		{[]string{"rotate", "bob", "--cf-api-key"}, adminRequest{Op: "rotate", Name: "bob", Credential: "cf-api-key"}},
		{[]string{"--secret", "rotate", "bob", "--json"}, adminRequest{Op: "rotate", Name: "bob", Credential: "secret"}},
	}
	for _, c := range ok {
		a, err := parseAccountArgs(c.args)
		if err != nil || a.req != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.args, a.req, err, c.want)
		}
	}
	bad := [][]string{
		{}, {"add"}, {"set", "bob"}, {"rotate", "bob"}, {"rotate", "bob", "--secret", "--api-key"},
		{"add", "bob", "--secret"}, {"list", "--max-listeners-per-ip", "3"}, {"set", "bob", "--require-signature", "v3"},
		{"set", "bob", "--max-listeners-per-ip", "0"}, {"frob", "bob"}, {"add", "bob", "--nope"},
	}
	for _, args := range bad {
		if _, err := parseAccountArgs(args); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}

// TestListAndSetShowNoSecrets: what list and set return, over the
// admin socket or directly, never holds the secret or the private key.
func TestListAndSetShowNoSecrets(t *testing.T) {
	store, err := persist.Open(persist.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a, err := store.AddAccount("carol")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []adminRequest{{Op: "list"}, {Op: "set", Name: "carol", Max: 7}} {
		rep := applyAccountOp(store, req)
		if rep.Error != "" {
			t.Fatalf("%s: %s", req.Op, rep.Error)
		}
		var out bytes.Buffer
		printAccountReply(&out, accountArgs{req: req}, rep)
		printAccountReply(&out, accountArgs{req: req, asJSON: true}, rep)
		raw, _ := json.Marshal(rep)
		for _, text := range []string{out.String(), string(raw)} {
			if strings.Contains(text, a.APISecret) || strings.Contains(text, a.APIKey) {
				t.Fatalf("%s shows a secret or the private key: %s", req.Op, text)
			}
			if !strings.Contains(text, "carol") {
				t.Fatalf("%s lost the account: %s", req.Op, text)
			}
		}
	}
}
