package protocol

import (
	"errors"
	"flag"
	"strconv"
	"time"
)

// Defaults of the Options fields an operator sets; EnsureDefaults fills
// zero fields with them and RegisterFlags starts each flag from them.
const (
	DefaultReadBatch      = 1000
	DefaultReadBatchBytes = 1 << 20
	DefaultCFReplayWindow = 10 * time.Minute
	DefaultCFResumeWindow = 3 * time.Minute
	DefaultMaxIdentifiers = 100
)

// RegisterFlags declares on fs a flag for every Options field an operator
// sets, each bound to its field and starting from its documented default,
// so that `halley serve --help`, its environment variables, its config
// file and `halley config print` show one default. The Cometify windows
// and --max-identifiers refuse a value that is not positive, where
// EnsureDefaults would silently put the default back.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.ReadBatch, "read-batch", DefaultReadBatch, "messages per read answer")
	fs.IntVar(&o.ReadBatchBytes, "read-batch-bytes", DefaultReadBatchBytes, "encoded bytes per read answer (at least one message)")
	o.CFReplayWindow = DefaultCFReplayWindow
	fs.Var((*positiveDuration)(&o.CFReplayWindow), "cf-replay-window", "Cometify: how far back an id-0 listener replays; pushes are kept at least this long")
	o.CFResumeWindow = DefaultCFResumeWindow
	fs.Var((*positiveDuration)(&o.CFResumeWindow), "cf-resume-window", "Cometify: how far back a listener resuming from an id > 0 gets pushes")
	o.MaxIdentifiers = DefaultMaxIdentifiers
	fs.Var((*positiveInt)(&o.MaxIdentifiers), "max-identifiers", "Cometify: identifiers one listener may watch")
	fs.BoolVar(&o.Demo.Open, "demo", false, "serve the demo page and its endpoints, which write and push as the demo account, to every client (default: loopback clients only)")
}

var errNotPositive = errors.New("must be positive")

// positiveDuration is a duration flag that refuses zero and negatives.
type positiveDuration time.Duration

func (d *positiveDuration) String() string { return time.Duration(*d).String() }

func (d *positiveDuration) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if x <= 0 {
		return errNotPositive
	}
	*d = positiveDuration(x)
	return nil
}

// Get returns the time.Duration (flag.Getter).
func (d *positiveDuration) Get() any { return time.Duration(*d) }

// positiveInt is an int flag that refuses zero and negatives.
type positiveInt int

func (n *positiveInt) String() string { return strconv.Itoa(int(*n)) }

func (n *positiveInt) Set(v string) error {
	x, err := strconv.Atoi(v)
	if err != nil {
		return err
	}
	if x <= 0 {
		return errNotPositive
	}
	*n = positiveInt(x)
	return nil
}

// Get returns the int (flag.Getter).
func (n *positiveInt) Get() any { return int(*n) }
