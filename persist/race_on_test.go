//go:build race

package persist

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation budgets that count on pools are skipped.
const raceEnabled = true
