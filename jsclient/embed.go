package jsclient

import (
	"embed"
	"encoding/json"
	"html"
	"strings"
)

//go:embed dist/ezcomet.js dist/ezcomet.min.js dist/cometify.js dist/cometify.min.js
var dist embed.FS

//go:embed demo.html
var demoHTML string

// Asset is one static file the server serves.
type Asset struct {
	Path, ContentType string
	Body              []byte
}

const jsType = "application/javascript; charset=utf-8"

// Assets are the JS clients at SPEC JS-01's paths: /ezcomet.js,
// /ezcomet.min.js, /latest/cometify.js, /latest/cometify.min.js. Each call
// returns fresh slices; the caller may keep them.
func Assets() []Asset {
	files := []struct{ path, file string }{
		{"/ezcomet.js", "dist/ezcomet.js"},
		{"/ezcomet.min.js", "dist/ezcomet.min.js"},
		{"/latest/cometify.js", "dist/cometify.js"},
		{"/latest/cometify.min.js", "dist/cometify.min.js"},
	}
	out := make([]Asset, 0, len(files))
	for _, f := range files {
		b, err := dist.ReadFile(f.file)
		if err != nil {
			panic("jsclient: embedded file missing: " + f.file) // the embed directive lists it
		}
		out = append(out, Asset{Path: f.path, ContentType: jsType, Body: b})
	}
	return out
}

// DemoPage renders the demo page (SPEC A-03) for the demo account from
// its username and public cf_api_key, the only credentials a page may
// carry: the page writes and pushes through the server's demo endpoints
// (/demo/write, /demo/push, /demo/securekey), which hold the private
// api_key and the api_secret.
func DemoPage(user, cfAPIKey string) []byte {
	cfg, _ := json.Marshal(map[string]string{"user": user, "cfApiKey": cfAPIKey})
	r := strings.NewReplacer("{{USER}}", html.EscapeString(user), "{{CONFIG}}", string(cfg))
	return []byte(r.Replace(demoHTML))
}
