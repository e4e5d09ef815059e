package jsclient

import (
	_ "embed"
	"strings"
)

//go:embed demo.html
var demoHTML string

// DemoPage returns the demo page for an account: it writes with
// the account's api_key, so it is only ever rendered for the demo account.
func DemoPage(username, apiKey string) []byte {
	r := strings.NewReplacer("{{USER}}", username, "{{API_KEY}}", apiKey)
	return []byte(r.Replace(demoHTML))
}
