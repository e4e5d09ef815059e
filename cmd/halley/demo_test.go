package main

import (
	"bytes"
	"strings"
	"testing"
)

// The demo page's URL on the start-up line is one a browser on this
// machine can open, and the page answers (a loopback address).
func TestDemoPageAddr(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		want   string
	}{
		{[]string{"127.0.0.1:8080"}, "127.0.0.1:8080"},
		{[]string{":8080"}, "127.0.0.1:8080"},
		{[]string{"0.0.0.0:8080"}, "127.0.0.1:8080"},
		{[]string{"[::]:8080"}, "[::1]:8080"},
		{[]string{"192.0.2.1:8080", "[::1]:2323"}, "[::1]:2323"},
		{[]string{"localhost:8080"}, "localhost:8080"},
		{[]string{"192.0.2.1:8080"}, "192.0.2.1:8080"}, // nothing better: --demo is needed there
	} {
		if got := demoPageAddr(tc.listen); got != tc.want {
			t.Errorf("demoPageAddr(%q) = %q, want %q", tc.listen, got, tc.want)
		}
	}
}

// serve warns at start when the demo account exists and a listener is not
// on loopback, and always with --demo.
func TestWarnDemoExposed(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		open   bool
		want   string // in the warning; "" for no warning
	}{
		{[]string{"127.0.0.1:8080"}, false, ""},
		{[]string{"localhost:8080", "[::1]:2323", "127.0.0.2:1"}, false, ""},
		{[]string{":8080"}, false, `listen=:8080`},
		{[]string{"127.0.0.1:8080", "0.0.0.0:2323"}, false, `listen=0.0.0.0:2323`},
		{[]string{"[::]:8080"}, false, `listen=[::]:8080`},
		{[]string{"example.org:8080"}, false, `listen=example.org:8080`},
		{[]string{"127.0.0.1:8080"}, true, "--demo: every client that reaches 127.0.0.1:8080"},
		{[]string{":8080"}, true, "--demo: every client that reaches :8080"},
	} {
		var buf bytes.Buffer
		warnDemoExposed(newLogger(&buf, "info"), tc.listen, tc.open)
		got := buf.String()
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%q open=%v: unexpected warning %s", tc.listen, tc.open, got)
		case tc.want != "" && (!strings.Contains(got, "level=WARN") || !strings.Contains(got, tc.want) || !strings.Contains(got, "halley account rm demo")):
			t.Errorf("%q open=%v: warning %q, want one containing %q", tc.listen, tc.open, got, tc.want)
		}
	}
}
