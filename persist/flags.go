package persist

import (
	"flag"
	"fmt"
)

// DefaultDir is the data directory `halley serve` uses when none is
// given. Options.Dir itself has no default: a library caller names it.
const DefaultDir = "./data"

// RegisterFlags declares on fs a flag for every Options field an operator
// sets, each bound to its field and starting from its documented default
// (the Default* constants EnsureDefaults also uses), so that `halley serve
// --help`, its environment variables, its config file and `halley config
// print` show one default. CFRetain has no flag: the server derives it
// from the API's replay windows.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	o.Dir = DefaultDir
	fs.StringVar(&o.Dir, "data", DefaultDir, "data directory (Pebble)")
	fs.Var(&o.Sync, "sync", "always (the default): acknowledge after the WAL is synced; none: do not sync (benchmarks only)")
	fs.IntVar(&o.EZMaxQueue, "ez-max-queue", DefaultEZMaxQueue, "messages kept per EZComet channel")
	fs.DurationVar(&o.EZMaxAge, "ez-max-age", DefaultEZMaxAge, "age after which EZComet messages drop")
	fs.DurationVar(&o.StallTimeout, "storage-stall-timeout", DefaultStallTimeout, "a commit running longer makes /healthz 503 and refuses new writes (503) until it returns (C-10)")
}

// String returns the mode's flag spelling: "always" or "none".
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// Set parses the flag spelling (flag.Value).
func (m *SyncMode) Set(v string) error {
	switch v {
	case "always":
		*m = SyncAlways
	case "none":
		*m = SyncNone
	default:
		return fmt.Errorf("must be always or none, not %q", v)
	}
	return nil
}

// Get returns the flag spelling (flag.Getter).
func (m *SyncMode) Get() any { return m.String() }
