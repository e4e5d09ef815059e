package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/halleypush/halley/persist"
)

const accountUsage = `usage: halley account [--data DIR] [--json] add NAME
       halley account [--data DIR] [--json] list
       halley account [--data DIR] rm NAME
       halley account [--data DIR] [--json] set NAME --max-listeners-per-ip N
Flags may stand before or after the verb.
`

// accountMain implements `halley account`. It talks to a running
// server through its admin socket, or opens the store itself when no
// server runs on the data directory.
func accountMain(args []string, stdout, stderr io.Writer) int {
	dir, asJSON, maxListeners := "./data", false, 0
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		next := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		switch name {
		case "json":
			asJSON = true
		case "data":
			v, ok := next()
			if !ok {
				fmt.Fprint(stderr, accountUsage)
				return 2
			}
			dir = v
		case "max-listeners-per-ip":
			v, ok := next()
			n, err := strconv.Atoi(v)
			if !ok || err != nil || n < 1 {
				fmt.Fprintln(stderr, "halley account: --max-listeners-per-ip needs a positive integer")
				return 2
			}
			maxListeners = n
		case "h", "help":
			fmt.Fprint(stdout, accountUsage)
			return 0
		default:
			fmt.Fprintf(stderr, "halley account: unknown flag %s\n%s", a, accountUsage)
			return 2
		}
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, accountUsage)
		return 2
	}
	req := adminRequest{Op: pos[0]}
	switch {
	case req.Op == "list" && len(pos) == 1:
	case (req.Op == "add" || req.Op == "rm") && len(pos) == 2:
		req.Name = pos[1]
	case req.Op == "set" && len(pos) == 2 && maxListeners > 0:
		req.Name, req.Max = pos[1], maxListeners
	default:
		fmt.Fprint(stderr, accountUsage)
		return 2
	}

	rep, err := runAccountOp(dir, req)
	if err != nil {
		fmt.Fprintln(stderr, "halley account:", err)
		return 1
	}
	if rep.Error != "" {
		fmt.Fprintln(stderr, "halley account:", rep.Error)
		return 1
	}
	switch req.Op {
	case "add":
		a := rep.Accounts[0]
		if asJSON {
			line, _ := json.Marshal(struct {
				Username  string `json:"username"`
				APIKey    string `json:"api_key"`
				APISecret string `json:"api_secret"`
			}{a.Username, a.APIKey, a.APISecret})
			fmt.Fprintf(stdout, "%s\n", line)
		} else {
			fmt.Fprintf(stdout, "added %s\napi_key:    %s\napi_secret: %s\n(the secret is shown only now; keep it)\n", a.Username, a.APIKey, a.APISecret)
		}
	case "list":
		if asJSON {
			// Secrets are not listed: list output ends up in logs.
			for _, a := range rep.Accounts {
				line, _ := json.Marshal(struct {
					Username          string `json:"username"`
					APIKey            string `json:"api_key"`
					MaxListenersPerIP int    `json:"max_listeners_per_ip"`
				}{a.Username, a.APIKey, a.MaxListenersPerIP})
				fmt.Fprintf(stdout, "%s\n", line)
			}
		} else {
			fmt.Fprintf(stdout, "%-32s  %-32s  %s\n", "USERNAME", "API_KEY", "MAX_LISTENERS_PER_IP")
			for _, a := range rep.Accounts {
				fmt.Fprintf(stdout, "%-32s  %-32s  %d\n", a.Username, a.APIKey, a.MaxListenersPerIP)
			}
		}
	case "rm":
		fmt.Fprintf(stdout, "removed %s\n", req.Name)
	case "set":
		if asJSON {
			line, _ := json.Marshal(rep.Accounts[0])
			fmt.Fprintf(stdout, "%s\n", line)
		} else {
			fmt.Fprintf(stdout, "%s: max_listeners_per_ip=%d\n", req.Name, req.Max)
		}
	}
	return 0
}

// runAccountOp prefers a running server's admin socket; with none, it
// opens the store directly (Pebble's lock makes that fail if a server
// runs but its socket is unreachable, which is the right answer).
func runAccountOp(dir string, req adminRequest) (adminReply, error) {
	rep, reached, err := callAdmin(filepath.Join(dir, adminSocketName), req)
	if reached {
		return rep, err
	}
	store, err := persist.Open(persist.Options{Dir: dir})
	if err != nil {
		return adminReply{}, fmt.Errorf("open %s (is a server running without its admin socket?): %w", dir, err)
	}
	rep = applyAccountOp(store, req)
	if err := store.Close(); err != nil {
		return rep, fmt.Errorf("close store: %w", err)
	}
	return rep, nil
}
