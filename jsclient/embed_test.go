package jsclient

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestAssetsAtJS01Paths(t *testing.T) {
	want := map[string]bool{"/ezcomet.js": true, "/ezcomet.min.js": true, "/latest/cometify.js": true, "/latest/cometify.min.js": true}
	for _, a := range Assets() {
		if !want[a.Path] {
			t.Errorf("unexpected asset %s", a.Path)
			continue
		}
		delete(want, a.Path)
		if a.ContentType != "application/javascript; charset=utf-8" {
			t.Errorf("%s: content type %q", a.Path, a.ContentType)
		}
		global := "window.ezcomet"
		if strings.Contains(a.Path, "cometify") {
			global = "window.Cometify"
		}
		if !bytes.Contains(a.Body, []byte(global)) {
			t.Errorf("%s does not define %s", a.Path, global)
		}
	}
	for p := range want {
		t.Errorf("missing asset %s", p)
	}
}

// The demo page carries the demo account's username and public
// cf_api_key and nothing else: its configuration object has
// exactly those two fields, and the page has no way to sign anything.
func TestDemoPageCarriesOnlyThePublicKey(t *testing.T) {
	page := string(DemoPage("demo", "0123abcd"))
	m := regexp.MustCompile(`(?m)^var demo = (\{.*\});$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no `var demo = {...};` line in the page:\n%s", page)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("the page's configuration is not JSON: %v: %s", err, m[1])
	}
	if want := map[string]any{"user": "demo", "cfApiKey": "0123abcd"}; !reflect.DeepEqual(cfg, want) {
		t.Fatalf("the page's configuration is %v, want exactly %v", cfg, want)
	}
	for _, bad := range []string{"apiSecret", "demo.apiKey", "md5(", "api_key:", "secure:"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q: it must not sign or write with a private credential", bad)
		}
	}
	for _, path := range []string{`"/demo/write"`, `"/demo/push"`, `"/demo/securekey?identifiers="`} {
		if !strings.Contains(page, path) {
			t.Errorf("the page does not use %s", path)
		}
	}
	if strings.Contains(page, "{{") {
		t.Fatal("placeholder left in the page")
	}
}

func TestDemoPageEscapesItsValues(t *testing.T) {
	page := string(DemoPage(`d</script><b>"`, "k</script>"))
	if strings.Contains(page, "</script><b>") || strings.Contains(page, "k</script>") {
		t.Fatal("a value is not escaped for its script or HTML context")
	}
	if !strings.Contains(page, "<code>d&lt;/script&gt;&lt;b&gt;&#34;</code>") {
		t.Fatal("the username is not shown HTML-escaped")
	}
}
