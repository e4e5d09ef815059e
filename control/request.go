package control

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/halleypush/halley/persist"
)

// Request is one command, sent as one JSON line.
type Request struct {
	// Op is add, list, rm, set or rotate (accounts, A-02) or backup.
	Op   string `json:"op"`
	Name string `json:"name,omitempty"`
	// set: the fields given (Max > 0; Signature "v2" or "none").
	Max       int    `json:"max_listeners_per_ip,omitempty"`
	Signature string `json:"require_signature,omitempty"`
	// rotate: "api-key", "cf-api-key" or "secret".
	Credential string `json:"credential,omitempty"`
	// backup: the absolute path of the checkpoint to write, which must
	// not exist. Absolute because the server's working directory is not
	// the CLI's.
	Dest string `json:"dest,omitempty"`
}

// Reply is the server's one JSON line back.
type Reply struct {
	Error    string            `json:"error,omitempty"`
	NotFound bool              `json:"not_found,omitempty"`
	Exists   bool              `json:"exists,omitempty"`
	Accounts []persist.Account `json:"accounts,omitempty"`
}

// Apply runs one command against an open store; the socket server and
// Do's direct path both use it. Only add and rotate return credentials
// list and set answers carry neither the secret nor the private
// api_key, not even to the CLI. backup blocks until the checkpoint is
// written (see persist.Store.Checkpoint); writers keep running meanwhile.
func Apply(store *persist.Store, req Request) Reply {
	var rep Reply
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
	case "backup":
		if !filepath.IsAbs(req.Dest) {
			err = fmt.Errorf("backup: destination %q is not an absolute path", req.Dest)
		} else {
			err = store.Checkpoint(req.Dest)
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
