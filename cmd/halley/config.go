package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/halleypush/halley/config"
)

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
	sources, err := config.Parse(fs, args)
	if err != nil {
		if !errors.Is(err, config.ErrFlags) {
			fmt.Fprintln(stderr, "halley config print:", err)
		}
		return 2
	}
	settings := config.Settings(fs, sources)
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
		fmt.Fprintf(stdout, "%-*s  %-7s  %s\n", width, s.Name, s.Source, s.Text)
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
