package persist

import (
	"errors"
	"fmt"
	"log"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultEZMaxQueue    = 1000
	DefaultEZMaxAge      = 24 * time.Hour
	DefaultTickMemory    = 7 * 24 * time.Hour
	DefaultCFRetain      = 10 * time.Minute
	DefaultMaxBatch      = 4096
	DefaultSweepInterval = time.Minute
	DefaultCacheSize     = 64 << 20
	// DefaultWriteQueue is how many writes may wait for the committer;
	// one more is refused at once.
	DefaultWriteQueue = 16384
	// DefaultStallTimeout is how long one commit may take before the
	// Store reports a stall.
	DefaultStallTimeout = 5 * time.Second
)

// EnsureDefaults fills every zero field with its documented default and
// returns o, so that `opts.EnsureDefaults().Validate()` reads naturally.
func (o *Options) EnsureDefaults() *Options {
	if o.EZMaxQueue == 0 {
		o.EZMaxQueue = DefaultEZMaxQueue
	}
	if o.EZMaxAge == 0 {
		o.EZMaxAge = DefaultEZMaxAge
	}
	if o.TickMemory == 0 {
		o.TickMemory = DefaultTickMemory
	}
	if o.CFRetain == 0 {
		o.CFRetain = DefaultCFRetain
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.WriteQueue == 0 {
		o.WriteQueue = DefaultWriteQueue
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.failLogEvery == 0 {
		o.failLogEvery = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	return o
}

// Validate reports the first field that cannot work. Call it after
// EnsureDefaults.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("persist: Options.Dir is required")
	case o.Sync != SyncAlways && o.Sync != SyncNone:
		return fmt.Errorf("persist: unknown Options.Sync %d", o.Sync)
	case o.EZMaxQueue < 1:
		return fmt.Errorf("persist: Options.EZMaxQueue %d < 1", o.EZMaxQueue)
	case o.EZMaxAge < 0:
		return fmt.Errorf("persist: Options.EZMaxAge %v < 0", o.EZMaxAge)
	case o.TickMemory < 0:
		return fmt.Errorf("persist: Options.TickMemory %v < 0", o.TickMemory)
	case o.CFRetain < 0:
		return fmt.Errorf("persist: Options.CFRetain %v < 0", o.CFRetain)
	case o.MaxBatch < 1:
		return fmt.Errorf("persist: Options.MaxBatch %d < 1", o.MaxBatch)
	case o.CacheSize < 0:
		return fmt.Errorf("persist: Options.CacheSize %d < 0", o.CacheSize)
	case o.StallTimeout < 0:
		return fmt.Errorf("persist: Options.StallTimeout %v < 0", o.StallTimeout)
	case o.failLogEvery <= 0:
		return errors.New("persist: Options.failLogEvery must be set (call EnsureDefaults)")
	case o.WriteQueue < 1:
		return fmt.Errorf("persist: Options.WriteQueue %d < 1", o.WriteQueue)
	case o.Now == nil || o.Logf == nil:
		return errors.New("persist: Options.Now and Options.Logf must be set (call EnsureDefaults)")
	}
	return nil
}
