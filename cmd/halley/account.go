package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/halleypush/halley/control"
	"github.com/halleypush/halley/persist"
)

const accountUsage = `usage: halley account [--data DIR] [--json] add NAME
       halley account [--data DIR] [--json] list
       halley account [--data DIR] rm NAME
       halley account [--data DIR] [--json] set NAME [--max-listeners-per-ip N] [--require-signature v2|none]
       halley account [--data DIR] [--json] rotate NAME --api-key|--cf-api-key|--secret
Flags may stand before or after the verb. add and rotate print the new
credentials once; list and set never print a secret or the private api_key.
`

// accountArgs is what `halley account` was told.
type accountArgs struct {
	dir    string
	asJSON bool
	req    control.Request
}

// parseAccountArgs reads the verb, its name and the flags, in any order.
func parseAccountArgs(args []string) (accountArgs, error) {
	a := accountArgs{dir: "./data"}
	var pos []string
	var rotate []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") {
			pos = append(pos, arg)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 < len(args) {
				i++
				return args[i], nil
			}
			return "", fmt.Errorf("%s needs a value", arg)
		}
		switch name {
		case "json":
			a.asJSON = true
		case "data":
			v, err := value()
			if err != nil {
				return a, err
			}
			a.dir = v
		case "max-listeners-per-ip":
			v, err := value()
			if err != nil {
				return a, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return a, fmt.Errorf("--max-listeners-per-ip needs a positive integer, not %q", v)
			}
			a.req.Max = n
		case "require-signature":
			v, err := value()
			if err != nil {
				return a, err
			}
			if v != "v2" && v != "none" {
				return a, fmt.Errorf("--require-signature is v2 or none, not %q", v)
			}
			a.req.Signature = v
		case "api-key", "cf-api-key", "secret":
			rotate = append(rotate, name)
		case "h", "help":
			return a, errHelp
		default:
			return a, fmt.Errorf("unknown flag %s", arg)
		}
	}
	if len(pos) == 0 {
		return a, errUsage
	}
	a.req.Op = pos[0]
	switch {
	case a.req.Op == "list" && len(pos) == 1:
	case (a.req.Op == "add" || a.req.Op == "rm") && len(pos) == 2:
		a.req.Name = pos[1]
	case a.req.Op == "set" && len(pos) == 2 && (a.req.Max > 0 || a.req.Signature != ""):
		a.req.Name = pos[1]
	case a.req.Op == "rotate" && len(pos) == 2 && len(rotate) == 1:
		a.req.Name, a.req.Credential = pos[1], rotate[0]
	default:
		return a, errUsage
	}
	if a.req.Op != "set" && (a.req.Max > 0 || a.req.Signature != "") || a.req.Op != "rotate" && len(rotate) > 0 {
		return a, errUsage
	}
	return a, nil
}

var (
	errHelp  = fmt.Errorf("help")
	errUsage = fmt.Errorf("usage")
)

// accountMain implements `halley account`. It talks to a running
// server through its control socket, or opens the store itself when no
// server runs on the data directory (control.Do).
func accountMain(args []string, stdout, stderr io.Writer) int {
	a, err := parseAccountArgs(args)
	switch {
	case err == errHelp:
		fmt.Fprint(stdout, accountUsage)
		return 0
	case err == errUsage:
		fmt.Fprint(stderr, accountUsage)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "halley account: %v\n%s", err, accountUsage)
		return 2
	}
	res, err := control.Do(a.dir, a.req)
	announceMigrated(stderr, res.Migrated)
	if err != nil {
		fmt.Fprintln(stderr, "halley account:", err)
		return 1
	}
	if res.Error != "" {
		fmt.Fprintln(stderr, "halley account:", res.Error)
		return 1
	}
	printAccountReply(stdout, a, res.Reply)
	return 0
}

// The JSON shapes `halley account` prints. credentialsJSON is A-02's
// one line for add; publicJSON is what list and set may show.
type credentialsJSON struct {
	Username  string `json:"username"`
	APIKey    string `json:"api_key"`
	CFAPIKey  string `json:"cf_api_key"`
	APISecret string `json:"api_secret"`
}

type publicJSON struct {
	Username          string `json:"username"`
	CFAPIKey          string `json:"cf_api_key"`
	MaxListenersPerIP int    `json:"max_listeners_per_ip"`
	RequireSignature  string `json:"require_signature"`
}

func toPublicJSON(a persist.Account) publicJSON {
	sig := a.RequireSignature
	if sig == "" {
		sig = "none"
	}
	return publicJSON{a.Username, a.CFAPIKey, a.MaxListenersPerIP, sig}
}

func printJSON(w io.Writer, v any) {
	line, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s\n", line)
}

func printAccountReply(stdout io.Writer, a accountArgs, rep control.Reply) {
	switch a.req.Op {
	case "add":
		acct := rep.Accounts[0]
		if a.asJSON {
			printJSON(stdout, credentialsJSON{acct.Username, acct.APIKey, acct.CFAPIKey, acct.APISecret})
			return
		}
		fmt.Fprintf(stdout, "added %s\n"+
			"api_key:    %s   (private: EZComet /write; never in a page)\n"+
			"cf_api_key: %s   (public: Cometify pages, listen and push URLs)\n"+
			"api_secret: %s   (signs Cometify pushes and secureKeys; never in a page)\n"+
			"(api_key and api_secret are shown only now; keep them)\n",
			acct.Username, acct.APIKey, acct.CFAPIKey, acct.APISecret)
	case "rotate":
		acct := rep.Accounts[0]
		field, value := rotatedField(a.req.Credential, acct)
		if a.asJSON {
			printJSON(stdout, map[string]string{"username": acct.Username, field: value})
			return
		}
		fmt.Fprintf(stdout, "rotated %s of %s\n%s: %s\n(shown only now; what the old value admitted is closed)\n",
			field, acct.Username, field, value)
	case "list":
		if a.asJSON {
			for _, acct := range rep.Accounts {
				printJSON(stdout, toPublicJSON(acct))
			}
			return
		}
		fmt.Fprintf(stdout, "%-32s  %-32s  %-20s  %s\n", "USERNAME", "CF_API_KEY", "MAX_LISTENERS_PER_IP", "REQUIRE_SIGNATURE")
		for _, acct := range rep.Accounts {
			p := toPublicJSON(acct)
			fmt.Fprintf(stdout, "%-32s  %-32s  %-20d  %s\n", p.Username, p.CFAPIKey, p.MaxListenersPerIP, p.RequireSignature)
		}
	case "rm":
		fmt.Fprintf(stdout, "removed %s and all its data\n", a.req.Name)
	case "set":
		p := toPublicJSON(rep.Accounts[0])
		if a.asJSON {
			printJSON(stdout, p)
			return
		}
		fmt.Fprintf(stdout, "%s: max_listeners_per_ip=%d require_signature=%s\n", p.Username, p.MaxListenersPerIP, p.RequireSignature)
	}
}

// rotatedField names the credential a rotate replaced and its new value.
func rotatedField(cred string, a persist.Account) (string, string) {
	switch cred {
	case "api-key":
		return "api_key", a.APIKey
	case "cf-api-key":
		return "cf_api_key", a.CFAPIKey
	default:
		return "api_secret", a.APISecret
	}
}

// announceMigrated tells the operator, once, what the migration from the
// single-key account format did to each account (see persist's doc):
// the old key is now the public cf_api_key, and EZComet publishers need
// the new private api_key printed here.
func announceMigrated(w io.Writer, migrated []persist.Account) {
	for _, a := range migrated {
		fmt.Fprintf(w, "migrated account %s to separate keys: its old key stays its public cf_api_key (Cometify pages keep working); "+
			"EZComet /write now needs the new private api_key %s (shown only now); api_secret unchanged\n",
			a.Username, a.APIKey)
	}
}
