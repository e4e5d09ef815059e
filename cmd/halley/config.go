package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/fftoml"
	"github.com/peterbourgon/ff/v3/ffyaml"
)

// envPrefix names the environment variables: --foo-bar reads
// HALLEY_FOO_BAR (ff's rule: upper case, '-' becomes '_').
const envPrefix = "HALLEY"

// configFlag names the flag (and HALLEY_CONFIG) that gives the file.
const configFlag = "config"

// Where a setting's value came from, by precedence.
const (
	fromFlag    = "flag"
	fromEnv     = "env"
	fromFile    = "file"
	fromDefault = "default"
)

// errFlags marks an error of the command line itself, which the flag
// package has already printed with the usage.
var errFlags = errors.New("bad flags")

// parseLayered fills every flag of fs from args, then the environment,
// then the config file named by --config (or HALLEY_CONFIG), each layer
// setting only the flags no earlier layer set: flag > env > file >
// default. It declares --config on fs itself, so that any flag declared on
// fs (by any package) gets all three sources with no work of its own. It
// returns each flag's source by name.
//
// Each layer is one ff.Parse, so that ff's rules (the env naming, list
// values set once per item, unknown keys) are applied, not copied; what a
// layer set is what fs.Visit shows after it and not before.
func parseLayered(fs *flag.FlagSet, args []string) (map[string]string, error) {
	if fs.Lookup(configFlag) == nil {
		fs.String(configFlag, "", "TOML (or .yaml/.yml: YAML) file of settings, keys named as the flags (env HALLEY_CONFIG)")
	}
	sources := map[string]string{}
	mark := func(src string) {
		fs.Visit(func(f *flag.Flag) {
			if _, ok := sources[f.Name]; !ok {
				sources[f.Name] = src
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", errFlags, err)
	}
	rest := fs.Args() // each ff.Parse below parses no arguments again
	mark(fromFlag)
	if err := ff.Parse(fs, rest, ff.WithEnvVarPrefix(envPrefix)); err != nil {
		return nil, err
	}
	mark(fromEnv)
	file := fs.Lookup(configFlag).Value.String()
	if err := ff.Parse(fs, rest, ff.WithConfigFileFlag(configFlag), ff.WithConfigFileParser(fileParser(fs, file))); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	mark(fromFile)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := sources[f.Name]; !ok {
			sources[f.Name] = fromDefault
		}
	})
	return sources, nil
}

// fileParser returns the ff parser for file: YAML for .yaml and .yml,
// TOML otherwise. Keys are flag names, with '_' accepted for '-'; a key
// that names no flag (or names --config) is an error naming it, not a
// setting silently lost to a typo.
func fileParser(fs *flag.FlagSet, file string) ff.ConfigFileParser {
	parse := fftoml.Parser
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yaml", ".yml":
		parse = ffyaml.Parser
	}
	return func(r io.Reader, set func(name, value string) error) error {
		return parse(r, func(key, value string) error {
			name := strings.ReplaceAll(key, "_", "-")
			if name == configFlag {
				return fmt.Errorf("key %q: a config file cannot name another", key)
			}
			if fs.Lookup(name) == nil {
				return fmt.Errorf("unknown key %q", key)
			}
			return set(name, value)
		})
	}
}

// configMain runs `halley config print [--json] [serve flags…]`.
func configMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "print" {
		fmt.Fprintln(stderr, "usage: halley config print [--json] [--config FILE] [serve flags…]")
		return 2
	}
	args, asJSON := withoutJSONFlag(args[1:])
	fs := flag.NewFlagSet("halley config print", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serveConfig
	serveFlags(fs, &cfg)
	sources, err := parseLayered(fs, args)
	if err != nil {
		if !errors.Is(err, errFlags) {
			fmt.Fprintln(stderr, "halley config print:", err)
		}
		return 2
	}
	settings := effectiveSettings(fs, sources)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(settings); err != nil {
			fmt.Fprintln(stderr, "halley config print:", err)
			return 1
		}
		return 0
	}
	width := 0
	for _, s := range settings {
		width = max(width, len(s.Name))
	}
	for _, s := range settings {
		fmt.Fprintf(stdout, "%-*s  %-7s  %s\n", width, s.Name, s.Source, s.text)
	}
	return 0
}

// withoutJSONFlag removes config print's own --json from args.
func withoutJSONFlag(args []string) ([]string, bool) {
	var out []string
	asJSON := false
	for _, a := range args {
		switch a {
		case "--json", "-json", "--json=true", "-json=true":
			asJSON = true
		default:
			out = append(out, a)
		}
	}
	return out, asJSON
}

// setting is one line of `halley config print`.
type setting struct {
	Name   string `json:"name"`
	Value  any    `json:"value"` // bool, int, []string or string
	Source string `json:"source"`
	text   string
}

// effectiveSettings lists every flag of fs, in name order, with its value
// and source.
func effectiveSettings(fs *flag.FlagSet, sources map[string]string) []setting {
	var out []setting
	fs.VisitAll(func(f *flag.Flag) {
		out = append(out, setting{Name: f.Name, Value: typedValue(f), Source: sources[f.Name], text: f.Value.String()})
	})
	return out
}

// typedValue is f's value as its type reads in TOML and JSON: a bool, an
// int, a list of strings, or else its flag spelling (durations "10s").
func typedValue(f *flag.Flag) any {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return f.Value.String()
	}
	switch v := g.Get().(type) {
	case bool, int, int64, uint, uint64:
		return v
	case []string:
		if v == nil {
			return []string{}
		}
		return v
	}
	return f.Value.String()
}

// exampleTOML renders every flag of fs but --config as a TOML file of its
// defaults, each under its usage as a comment: docs/config.md holds it,
// and a test keeps the two the same.
func exampleTOML(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == configFlag {
			return
		}
		fmt.Fprintf(&b, "# %s (--%s, %s_%s)\n", f.Usage, f.Name, envPrefix, strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")))
		fmt.Fprintf(&b, "%s = %s\n\n", f.Name, tomlValue(typedValue(f)))
	})
	return strings.TrimSuffix(b.String(), "\n")
}

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	return fmt.Sprint(v)
}
