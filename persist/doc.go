// Package persist owns durable state in Pebble: accounts, EZComet channel
// queues with per-channel sequence numbers, the tick → sequence index,
// retention by count and age, and flush. (Cometify push ids and replay
// windows join later.)
//
// Writes are acknowledged only after the WAL is synced: one committer
// goroutine drains every pending write into one Pebble batch and syncs it
// once (group commit), then calls each write's completion in acceptance
// order. Reads are synchronous and safe from any goroutine.
//
// It knows nothing about HTTP, sockets or event loops.
package persist
