package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/halleypush/halley/control"
	"github.com/halleypush/halley/persist"
)

// TestAccountArgs checks the CLI's grammar: verbs, flags in any place,
// and the combinations refused.
func TestAccountArgs(t *testing.T) {
	ok := []struct {
		args []string
		want control.Request
	}{
		{[]string{"add", "bob"}, control.Request{Op: "add", Name: "bob"}},
		{[]string{"--data", "d", "list"}, control.Request{Op: "list"}},
		{[]string{"set", "bob", "--max-listeners-per-ip=5"}, control.Request{Op: "set", Name: "bob", Max: 5}},
		{[]string{"set", "bob", "--require-signature", "v2"}, control.Request{Op: "set", Name: "bob", Signature: "v2"}},
		{[]string{"rotate", "bob", "--cf-api-key"}, control.Request{Op: "rotate", Name: "bob", Credential: "cf-api-key"}},
		{[]string{"--secret", "rotate", "bob", "--json"}, control.Request{Op: "rotate", Name: "bob", Credential: "secret"}},
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
// control socket or directly, and what the CLI prints of it, never holds
// the secret or the private key.
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
	for _, req := range []control.Request{{Op: "list"}, {Op: "set", Name: "carol", Max: 7}} {
		rep := control.Apply(store, req)
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
