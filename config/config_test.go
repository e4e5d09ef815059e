package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newSet declares three settings, each to be given by a different layer,
// and one left at its default.
func newSet() (*flag.FlagSet, *string, *int, *string, *string) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := fs.String("from-flag", "d1", "")
	b := fs.Int("from-env", 1, "")
	c := fs.String("from-file", "d3", "")
	d := fs.String("untouched", "d4", "")
	return fs, a, b, c, d
}

// TestParseLayers: flag > env > file > default, each value's source
// reported; a file key may spell '-' as '_'.
func TestParseLayers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(file, []byte("from_file = \"file\"\nfrom-env = 7\nfrom-flag = \"file\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HALLEY_FROM_ENV", "42")
	t.Setenv("HALLEY_FROM_FLAG", "env")
	fs, a, b, c, d := newSet()
	src, err := Parse(fs, []string{"--from-flag", "flag", "--config", file})
	if err != nil {
		t.Fatal(err)
	}
	if *a != "flag" || *b != 42 || *c != "file" || *d != "d4" {
		t.Fatalf("values %q %d %q %q", *a, *b, *c, *d)
	}
	want := map[string]string{"from-flag": FromFlag, "from-env": FromEnv, "from-file": FromFile, "untouched": FromDefault, FileFlag: FromFlag}
	for name, w := range want {
		if src[name] != w {
			t.Errorf("%s from %q, want %q", name, src[name], w)
		}
	}
	var lines []string
	for _, s := range Settings(fs, src) {
		lines = append(lines, s.Name+"="+s.Text+"/"+s.Source)
	}
	if got := strings.Join(lines, " "); !strings.Contains(got, "from-env=42/env") || !strings.Contains(got, "untouched=d4/default") {
		t.Fatalf("settings: %s", got)
	}
}

// TestParseRefusesUnknownKey: a typo in the file is an error naming it.
func TestParseRefusesUnknownKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("from-flag: x\nfrom-flg: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, _, _, _, _ := newSet()
	if _, err := Parse(fs, []string{"--config", file}); err == nil || !strings.Contains(err.Error(), `"from-flg"`) {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestChoice: a Choice flag takes only its words, from any layer.
func TestChoice(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := "text"
	fs.Var(Choice{Dst: &v, Choices: []string{"text", "json"}}, "fmt", "")
	t.Setenv("HALLEY_FMT", "jsno")
	if _, err := Parse(fs, nil); err == nil {
		t.Fatal("a misspelt choice from the environment was taken")
	}
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.SetOutput(io.Discard)
	fs2.Var(Choice{Dst: &v, Choices: []string{"text", "json"}}, "fmt", "")
	if _, err := Parse(fs2, []string{"--fmt", "json"}); err != nil || v != "json" {
		t.Fatalf("json: %v %q", err, v)
	}
}
