package persist

import (
	"flag"
	"io"
	"testing"
)

// TestRegisterFlagsDefaults: with no flag given, the flagged fields hold
// the Default* values EnsureDefaults fills in, and --sync reads and
// prints its two spellings.
func TestRegisterFlagsDefaults(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	var d Options
	d.EnsureDefaults()
	if o.Dir != DefaultDir || o.Sync != SyncAlways || o.EZMaxQueue != d.EZMaxQueue || o.EZMaxAge != d.EZMaxAge || o.StallTimeout != d.StallTimeout {
		t.Errorf("flag defaults %+v differ from EnsureDefaults' %+v", o, d)
	}
	if err := fs.Parse([]string{"--sync", "none"}); err != nil || o.Sync != SyncNone || fs.Lookup("sync").Value.String() != "none" {
		t.Errorf("--sync none: %v, %v", err, o.Sync)
	}
	if err := fs.Parse([]string{"--sync", "sometimes"}); err == nil {
		t.Error("--sync sometimes was accepted")
	}
}
