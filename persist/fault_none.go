//go:build !halley_fault_ackfirst

package persist

import "time"

// faultAckFirst is false in every normal build: completions run only after
// their batch is committed. See fault_ackfirst.go for the planted fault
// the crash test uses (build tag halley_fault_ackfirst).
const faultAckFirst = false

const faultAckFirstDelay = time.Duration(0)
