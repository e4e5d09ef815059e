package main

import (
	"bytes"
	"flag"
	"github.com/halleypush/halley/config"
	"io"
	"strings"
	"testing"
)

// FuzzConfigFile feeds arbitrary bytes to the config file parsers (TOML,
// and YAML when yaml is set) over serve's FlagSet: whatever the file
// holds, loading it returns an error or sets flags, never panics, and a
// key it accepted names a serve flag. Seeds: testdata/fuzz/FuzzConfigFile.
func FuzzConfigFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		serveFlags(fs, &serveConfig{})
		name := "halley.toml"
		if yaml {
			name = "halley.yaml"
		}
		_ = config.FileParser(fs, name)(bytes.NewReader(data), func(key, value string) error {
			if fs.Lookup(key) == nil || strings.Contains(key, "_") {
				t.Fatalf("set called with %q, which names no flag", key)
			}
			return fs.Set(key, value)
		})
	})
}
