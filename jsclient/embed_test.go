package jsclient

import (
	"bytes"
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

func TestDemoPageEmbedsCredentialsSafely(t *testing.T) {
	page := string(DemoPage("demo", "0123abcd", `s</script><b>"`))
	if !strings.Contains(page, `"apiKey":"0123abcd"`) || !strings.Contains(page, "<code>demo</code>") {
		t.Fatalf("credentials not rendered:\n%s", page)
	}
	if strings.Contains(page, "s</script><b>") {
		t.Fatal("secret not escaped for a script context")
	}
	if strings.Contains(page, "{{") {
		t.Fatal("placeholder left in the page")
	}
	if !strings.Contains(string(DemoPage("demo", "k", "")), `"apiSecret":""`) {
		t.Fatal("an empty secret should render as one")
	}
}
