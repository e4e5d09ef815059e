//go:build race

package protocol

// raceEnabled: under -race sync.Pool drops items at random, so allocation
// budgets are checked in the non-race step of make test.
const raceEnabled = true
