package config

import (
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

// EnvPrefix names the environment variables: --foo-bar reads
// HALLEY_FOO_BAR (ff's rule: upper case, '-' becomes '_').
const EnvPrefix = "HALLEY"

// FileFlag names the flag (and HALLEY_CONFIG) that gives the file.
const FileFlag = "config"

// Where a setting's value came from, by precedence.
const (
	FromFlag    = "flag"
	FromEnv     = "env"
	FromFile    = "file"
	FromDefault = "default"
)

// ErrFlags marks an error of the command line itself, which the flag
// package has already printed with the usage.
var ErrFlags = errors.New("bad flags")

// Parse fills every flag of fs from args, then the environment,
// then the config file named by --config (or HALLEY_CONFIG), each layer
// setting only the flags no earlier layer set: flag > env > file >
// default. It declares --config on fs itself, so that any flag declared on
// fs (by any package) gets all three sources with no work of its own. It
// returns each flag's source by name.
//
// Each layer is one ff.Parse, so that ff's rules (the env naming, list
// values set once per item, unknown keys) are applied, not copied; what a
// layer set is what fs.Visit shows after it and not before.
func Parse(fs *flag.FlagSet, args []string) (map[string]string, error) {
	if fs.Lookup(FileFlag) == nil {
		fs.String(FileFlag, "", "TOML (or .yaml/.yml: YAML) file of settings, keys named as the flags (env HALLEY_CONFIG)")
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
		return nil, fmt.Errorf("%w: %w", ErrFlags, err)
	}
	mark(FromFlag)
	// Each ff.Parse below is given no arguments: the command line is
	// parsed, and what follows a "--" must not be read as flags.
	if err := ff.Parse(fs, nil, ff.WithEnvVarPrefix(EnvPrefix)); err != nil {
		return nil, err
	}
	mark(FromEnv)
	file := fs.Lookup(FileFlag).Value.String()
	if err := ff.Parse(fs, nil, ff.WithConfigFileFlag(FileFlag), ff.WithConfigFileParser(FileParser(fs, file))); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	mark(FromFile)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := sources[f.Name]; !ok {
			sources[f.Name] = FromDefault
		}
	})
	return sources, nil
}

// FileParser returns the ff parser for file: YAML for .yaml and .yml,
// TOML otherwise. Keys are flag names, with '_' accepted for '-'; a key
// that names no flag (or names --config) is an error naming it, not a
// setting silently lost to a typo.
func FileParser(fs *flag.FlagSet, file string) ff.ConfigFileParser {
	parse := fftoml.Parser
	switch strings.ToLower(filepath.Ext(file)) {
	case ".yaml", ".yml":
		parse = ffyaml.Parser
	}
	return func(r io.Reader, set func(name, value string) error) error {
		return parse(r, func(key, value string) error {
			name := strings.ReplaceAll(key, "_", "-")
			if name == FileFlag {
				return fmt.Errorf("key %q: a config file cannot name another", key)
			}
			if fs.Lookup(name) == nil {
				return fmt.Errorf("unknown key %q", key)
			}
			return set(name, value)
		})
	}
}

// Choice is a string flag that takes one of a few words, so that a
// misspelling is refused by whichever layer gave it (and by config print).
type Choice struct {
	Dst     *string
	Choices []string
}

func (c Choice) String() string {
	if c.Dst == nil { // flag.PrintDefaults' zero value
		return ""
	}
	return *c.Dst
}

func (c Choice) Set(v string) error {
	for _, ch := range c.Choices {
		if v == ch {
			*c.Dst = v
			return nil
		}
	}
	return fmt.Errorf("must be %s, not %q", strings.Join(c.Choices, " or "), v)
}

// Setting is one line of `halley config print`.
type Setting struct {
	Name   string `json:"name"`
	Value  any    `json:"value"` // bool, int, []string or string
	Source string `json:"source"`
	Text   string `json:"-"` // the value as the flag prints it
}

// Settings lists every flag of fs, in name order, with its value
// and source.
func Settings(fs *flag.FlagSet, sources map[string]string) []Setting {
	var out []Setting
	fs.VisitAll(func(f *flag.Flag) {
		out = append(out, Setting{Name: f.Name, Value: Value(f), Source: sources[f.Name], Text: f.Value.String()})
	})
	return out
}

// Value is f's value as its type reads in TOML and JSON: a bool, an
// int, a list of strings, or else its flag spelling (durations "10s").
func Value(f *flag.Flag) any {
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

// ExampleTOML renders every flag of fs but --config as a TOML file of its
// defaults, each under its usage as a comment: docs/config.md holds it,
// and a test keeps the two the same.
func ExampleTOML(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == FileFlag {
			return
		}
		fmt.Fprintf(&b, "# %s (--%s, %s_%s)\n", f.Usage, f.Name, EnvPrefix, strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")))
		fmt.Fprintf(&b, "%s = %s\n\n", f.Name, tomlValue(Value(f)))
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
