package protocol

import (
	"flag"
	"io"
	"testing"
)

// TestRegisterFlagsDefaults: with no flag given, the flagged fields hold
// what EnsureDefaults fills in; the Cometify windows and
// --max-identifiers refuse what is not positive (EnsureDefaults would put
// the default back without a word).
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
	if o.ReadBatch != d.ReadBatch || o.ReadBatchBytes != d.ReadBatchBytes || o.CFReplayWindow != d.CFReplayWindow ||
		o.CFResumeWindow != d.CFResumeWindow || o.MaxIdentifiers != d.MaxIdentifiers || o.Demo.Open {
		t.Errorf("flag defaults %+v differ from EnsureDefaults' %+v", o, d)
	}
	for _, bad := range [][]string{{"--cf-replay-window", "0s"}, {"--cf-resume-window", "-1m"}, {"--max-identifiers", "0"}} {
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}
