package protocol

import (
	"regexp"
	"strings"
	"testing"
)

func TestSplitQName(t *testing.T) {
	cases := []struct {
		in          string
		user, chan_ string
		ok          bool
	}{
		{"john1012-chatroom.public", "john1012", "chatroom.public", true},
		{"a-b", "a", "b", true},
		{"a-b-c", "a", "b-c", true},
		{"a-b~_.", "a", "b~_.", true},
		{"-b", "", "", false},
		{"a-", "", "", false},
		{"ab", "", "", false},
		{"a-b c", "", "", false},
		{"a-b/c", "", "", false},
		{"u-" + strings.Repeat("x", 62), "u", strings.Repeat("x", 62), true},
		{"u-" + strings.Repeat("x", 63), "", "", false},
	}
	for _, tc := range cases {
		u, c, ok := splitQName([]byte(tc.in))
		if ok != tc.ok || ok && (string(u) != tc.user || string(c) != tc.chan_) {
			t.Errorf("splitQName(%q) = %q, %q, %v", tc.in, u, c, ok)
		}
	}
}

func TestValidTick(t *testing.T) {
	for in, want := range map[string]bool{
		"1": true, "abc-DEF_~!": true, strings.Repeat("t", 64): true,
		"": false, strings.Repeat("t", 65): false, "a b": false, "a\x7f": false, "é": false,
	} {
		if got := validTick([]byte(in)); got != want {
			t.Errorf("validTick(%q) = %v", in, got)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "30": 30, "120": 120, "007": 7} {
		if got, ok := parseTimeout([]byte(in), 120); !ok || got != want {
			t.Errorf("parseTimeout(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "121", "-1", "1.5", "abc", " 1", "99999"} {
		if _, ok := parseTimeout([]byte(in), 120); ok {
			t.Errorf("parseTimeout(%q) accepted", in)
		}
	}
}

func TestValidCallback(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$`)
	for _, in := range []string{"cb", "$", "_a.b$1", "jQuery123_456", "1a", "", "a-b", "a(b", strings.Repeat("a", 64), strings.Repeat("a", 65), "a b"} {
		if got, want := validCallback([]byte(in)), re.MatchString(in); got != want {
			t.Errorf("validCallback(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNewUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		var b [uuidLen]byte
		putUUID(b[:])
		u := string(b[:])
		if !re.MatchString(u) || seen[u] {
			t.Fatalf("bad or repeated uuid %q", u)
		}
		seen[u] = true
	}
}

func TestAppendJSONString(t *testing.T) {
	cases := map[string]string{
		"plain":         `"plain"`,
		`q"b\`:          `"q\"b\\"`,
		"nl\n\r\t\x01":  `"nl\n\r\t\u0001"`,
		"é":             `"é"`,
		"\u2028x\u2029": `"\u2028x\u2029"`,
		"bad\xffbyte":   `"bad\ufffdbyte"`,
	}
	for in, want := range cases {
		if got := string(appendJSONString(nil, []byte(in))); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAppendSSEEvent(t *testing.T) {
	got := string(appendSSEEvent(nil, []byte("t1"), []byte("a\nb\r\nc\rd")))
	want := "id: t1\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
