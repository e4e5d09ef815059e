package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`)
	apiKeyRE   = regexp.MustCompile(`^[0-9a-f]{32}$`)
	secretRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{24,}$`)
)

// accountCases are the A rules.
func accountCases() []ruleCase {
	return []ruleCase{
		{rule: "A-01", what: "account credentials: username, 32-hex api_key, 24+ char api_secret; the key writes", run: checkAccountShape},
		{rule: "A-02", what: "account add --json / list / set (listeners per IP) / rm take effect on the running server", run: checkAccountCLI},
		{rule: "A-03", what: "GET / serves an HTML page (the demo page)", run: checkDemoPage},
	}
}

// accountShape reports what is wrong with an account's credentials.
func accountShape(a Account) error {
	switch {
	case !usernameRE.MatchString(a.User):
		return fmt.Errorf("username %q does not match %s", a.User, usernameRE)
	case !apiKeyRE.MatchString(a.Key):
		return fmt.Errorf("api_key %q is not 32 lowercase hex chars", a.Key)
	case !secretRE.MatchString(a.Secret):
		return fmt.Errorf("api_secret %q is not 24+ chars of [A-Za-z0-9_-]", a.Secret)
	}
	return nil
}

func checkAccountShape(t *caseT) {
	accounts := []Account{t.cfg.Account}
	if t.cfg.Account2.User != "" {
		accounts = append(accounts, t.cfg.Account2)
		if t.cfg.Account2.Key == t.cfg.Account.Key || t.cfg.Account2.Secret == t.cfg.Account.Secret {
			t.Fatalf("two accounts share a key or a secret")
		}
	}
	for _, a := range accounts {
		if err := accountShape(a); err != nil {
			t.Fatalf("%v", err)
		}
		q := a.User + "-a01" + randHex(8)
		t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", "x"), "write with the account of "+a.User)
	}
}

// accountCmd runs the --account-cmd prefix with args and returns its stdout.
func (t *caseT) accountCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.scaled(20*time.Second))
	defer cancel()
	argv := append(append([]string(nil), t.cfg.AccountCmd[1:]...), args...)
	cmd := exec.CommandContext(ctx, t.cfg.AccountCmd[0], argv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", strings.Join(t.cfg.AccountCmd, " "), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// immediately checks that the first answer after an account change has
// the wanted status; when a later one does, the failure says how late the
// change took effect.
func (t *caseT) immediately(what string, status int, send func() *reply) {
	r := send()
	if r.status == status {
		return
	}
	start := time.Now()
	for time.Since(start) < t.cfg.scaled(3*time.Second) {
		t.sleep(50 * time.Millisecond)
		if send().status == status {
			t.Fatalf("%s: answered %d only after %v, want it at once (got %s first)", what, status, time.Since(start).Round(time.Millisecond), r)
		}
	}
	t.Fatalf("%s: want %d, got %s", what, status, r)
}

func checkAccountCLI(t *caseT) {
	if len(t.cfg.AccountCmd) == 0 {
		t.Skipf(`pass --account-cmd "halley account --data DIR" (the server's data directory)`)
	}
	name := "cf" + randHex(10)
	out, err := t.accountCmd("add", name, "--json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("add --json: want exactly one line, got %d: %q", len(lines), clip([]byte(out)))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("add --json: not a JSON object: %v: %q", err, lines[0])
	}
	if len(got) != 3 {
		t.Fatalf(`add --json: want exactly username, api_key, api_secret, got %q`, lines[0])
	}
	var a Account
	a.User, _ = got["username"].(string)
	a.Key, _ = got["api_key"].(string)
	a.Secret, _ = got["api_secret"].(string)
	if a.User != name {
		t.Fatalf("add --json: username %q, want %q", a.User, name)
	}
	if err := accountShape(a); err != nil {
		t.Fatalf("add --json: %v", err)
	}
	if _, err := t.accountCmd("add", name, "--json"); err == nil {
		t.Fatalf("adding %s a second time succeeded; want a non-zero exit", name)
	}
	if _, err := t.accountCmd("add", "Bad-Name", "--json"); err == nil {
		t.Fatalf(`adding the invalid username "Bad-Name" succeeded; want a non-zero exit`)
	}

	q := name + "-fresh"
	t.immediately("a new account's key on the running server", 200, func() *reply {
		return t.write("api_key", a.Key, "qname", q, "msg", "hi", "tick", "a02")
	})
	if items, _ := t.readAll(q, ""); len(items) != 1 || items[0].tick != "a02" {
		t.Fatalf("read back the new account's message: got %v", items)
	}

	out, err = t.accountCmd("list", "--json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(out, `"`+name+`"`) {
		t.Fatalf("list --json does not show %s: %q", name, clip([]byte(out)))
	}
	if _, err := t.accountCmd("set", name, "--max-listeners-per-ip", "5"); err != nil {
		t.Fatalf("%v", err)
	}
	// The new limit holds on the running server: five listeners from one
	// IP, and the sixth is a 429. The account is this case's alone, so a
	// shared client IP does no harm.
	ip, _ := t.freshOrSame()
	for i := range 5 {
		ip.holdSoon(viaWS, a, ident(), fmt.Sprintf("listener %d of 5 after set --max-listeners-per-ip 5", i+1))
	}
	t.immediately("a sixth listener after set --max-listeners-per-ip 5", 429, func() *reply {
		c, r := ip.openWS(listenerPath(a, viaWS, ident()))
		if c != nil {
			c.close()
			return &reply{status: 101, header: c.resp.header}
		}
		return r
	})
	if _, err := t.accountCmd("rm", name); err != nil {
		t.Fatalf("%v", err)
	}
	t.immediately("a removed account's key", 401, func() *reply {
		return t.write("api_key", a.Key, "qname", q, "msg", "after rm")
	})
	out, err = t.accountCmd("list", "--json")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if strings.Contains(out, `"`+name+`"`) {
		t.Fatalf("list --json still shows %s after rm: %q", name, clip([]byte(out)))
	}
}

func checkDemoPage(t *caseT) {
	r := t.do("GET", "/", "")
	if r.status != 200 {
		t.Fatalf("GET /: want 200, got %s", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/html") {
		t.Fatalf("GET /: Content-Type %q, want text/html", ct)
	}
	body := strings.ToLower(string(r.body))
	if !strings.Contains(body, "<html") && !strings.Contains(body, "<!doctype html") {
		t.Fatalf("GET /: not an HTML page: %q", clip(r.body))
	}
	t.Notef("the demo account created on an empty data directory (needs a fresh server)")
}
