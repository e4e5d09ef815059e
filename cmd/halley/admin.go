package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/halleypush/halley/persist"
)

// The admin socket lets `halley account` change accounts while a server
// holds Pebble's exclusive lock on the same data directory. We
// chose a Unix socket inside the data directory over watching the store:
// the change takes effect the moment the CLI returns, the socket's file
// mode (0600) limits it to the data directory's owner, and there is no
// second writer to Pebble. Without a running server the CLI opens the
// store itself.
const adminSocketName = "admin.sock"

// adminRequest is one JSON line from the CLI.
type adminRequest struct {
	Op   string `json:"op"` // add, list, rm, set, rotate
	Name string `json:"name,omitempty"`
	// set: the fields given (Max > 0; Signature "v2" or "none").
	Max       int    `json:"max_listeners_per_ip,omitempty"`
	Signature string `json:"require_signature,omitempty"`
	// rotate: "api-key", "cf-api-key" or "secret".
	Credential string `json:"credential,omitempty"`
}

// adminReply is the server's one JSON line back.
type adminReply struct {
	Error    string            `json:"error,omitempty"`
	NotFound bool              `json:"not_found,omitempty"`
	Exists   bool              `json:"exists,omitempty"`
	Accounts []persist.Account `json:"accounts,omitempty"`
}

type adminServer struct {
	ln   net.Listener
	path string
}

func startAdmin(path string, store *persist.Store, log *slog.Logger) (*adminServer, error) {
	// A socket file left by a killed server is stale: nothing else can
	// serve it while we hold the store's lock.
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", path, err)
	}
	// The socket lives in the data directory (0700, C-14), so no other
	// user reaches it; the mode and the peer check below are the second
	// and third lines of defence.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: chmod %s: %w", path, err)
	}
	a := &adminServer{ln: ln, path: path}
	go a.acceptLoop(store, log)
	return a, nil
}

func (a *adminServer) Close() {
	a.ln.Close()
	_ = os.Remove(a.path)
}

func (a *adminServer) acceptLoop(store *persist.Store, log *slog.Logger) {
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		// One short-lived goroutine per admin command, not per client
		// connection: the admin socket sees a handful of calls a day.
		go func() {
			defer c.Close()
			if err := checkPeer(c); err != nil {
				log.Warn("admin socket: refused a peer", "err", err)
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var req adminRequest
			if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
				return
			}
			rep := applyAccountOp(store, req)
			if rep.Error != "" {
				log.Info("admin command failed", "op", req.Op, "name", req.Name, "err", rep.Error)
			}
			_ = json.NewEncoder(c).Encode(rep)
		}()
	}
}

// applyAccountOp runs one account command against a store; both the
// admin socket and the CLI's direct path use it. Only add and rotate
// return credentials: list and set answers carry neither the
// secret nor the private api_key, not even to the CLI.
func applyAccountOp(store *persist.Store, req adminRequest) adminReply {
	var rep adminReply
	var err error
	switch req.Op {
	case "add":
		var a persist.Account
		a, err = store.AddAccount(req.Name)
		if err == nil {
			rep.Accounts = []persist.Account{a}
		}
	case "list":
		for _, a := range store.Accounts() {
			rep.Accounts = append(rep.Accounts, publicView(a))
		}
	case "rm":
		err = store.RemoveAccount(req.Name)
	case "set":
		if req.Max > 0 {
			err = store.SetMaxListenersPerIP(req.Name, req.Max)
		}
		if err == nil && req.Signature != "" {
			mode := req.Signature
			if mode == "none" {
				mode = ""
			}
			err = store.SetRequireSignature(req.Name, mode)
		}
		if err == nil {
			a, _ := store.AccountByName([]byte(req.Name))
			rep.Accounts = []persist.Account{publicView(a)}
		}
	case "rotate":
		var c persist.Credential
		switch req.Credential {
		case "api-key":
			c = persist.CredAPIKey
		case "cf-api-key":
			c = persist.CredCFAPIKey
		case "secret":
			c = persist.CredSecret
		default:
			err = fmt.Errorf("rotate: unknown credential %q", req.Credential)
		}
		if err == nil {
			var a persist.Account
			a, err = store.RotateAccount(req.Name, c)
			if err == nil {
				rep.Accounts = []persist.Account{a}
			}
		}
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		rep.Error = err.Error()
		rep.NotFound = errors.Is(err, persist.ErrNoAccount)
		rep.Exists = errors.Is(err, persist.ErrAccountExists)
	}
	return rep
}

// publicView is a without what only add and rotate may show.
func publicView(a persist.Account) persist.Account {
	a.APIKey, a.APISecret = "", ""
	return a
}

// callAdmin sends req to a running server's admin socket. ok is false
// when no server listens there (the caller then opens the store itself).
func callAdmin(path string, req adminRequest) (adminReply, bool, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return adminReply{}, false, nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return adminReply{}, true, fmt.Errorf("admin: send: %w", err)
	}
	var rep adminReply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return adminReply{}, true, fmt.Errorf("admin: read reply: %w", err)
	}
	return rep, true, nil
}
