// Package config fills a flag.FlagSet from three layers: the command
// line, the environment (--foo-bar reads HALLEY_FOO_BAR) and a TOML or
// YAML file named by --config (keys are the flag names), with flag > env >
// file > default, and says where each value came from (Parse, Settings),
// for `halley config print`. Packages declare their own flags next to
// their documented defaults (their Options' RegisterFlags); any flag on
// the set gets all three layers with no code of its own.
//
// Each layer is one pass of github.com/peterbourgon/ff/v3, so its rules
// (env naming, list values, unknown keys) are applied, not copied.
package config
