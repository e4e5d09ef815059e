//go:build halley_fault_ackfirst

package persist

import "time"

// faultAckFirst plants a durability bug for the crash test: the committer
// calls every completion BEFORE applying its batch, then waits
// faultAckFirstDelay before applying it. A server built with
// `-tags halley_fault_ackfirst` acknowledges writes that a kill -9 in that
// window loses, which proves the crash test can see loss. Never ship it.
const faultAckFirst = true

const faultAckFirstDelay = 300 * time.Millisecond
