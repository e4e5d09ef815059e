// Package persist owns durable state in Pebble: accounts, EZComet channel
// queues with per-channel sequence numbers, the tick → sequence index,
// retention by count and age, and flush; and Cometify pushes per topic
// with their push ids, retained for Options.CFRetain.
//
// Writes are acknowledged only after the WAL is synced: one committer
// goroutine drains every pending write into one Pebble batch and syncs it
// once (group commit), then calls each write's completion in acceptance
// order. When a completion runs, its message is already visible to reads.
// Reads are synchronous and safe from any goroutine.
//
// Goroutines: the committer (every EZWrite and CFPush, which share its
// batches and their fsync, and the retention sweep, which it runs between
// batches so that channel and topic metadata have a single writer)
// and the sweeper's ticker. Account changes write synchronously from the
// caller; account lookups read an immutable snapshot without locks or
// allocations.
//
// In memory: every account, per channel the range first..last of the
// sequence numbers it retains (deletions always remove a prefix, so the
// retained messages are contiguous), and per topic the highest push id
// ever accepted and the highest one dropped by retention (every accepted
// id above it is retained; ids may skip, since pushes may give them). On
// disk (see keys.go): accounts, channel and topic metadata, messages by
// (qname, seq), pushes by (topic, id), and tick memories by (qname, tick)
// that outlive their message for Options.TickMemory so that a resume from
// a dropped tick reports a gap.
//
// A failed commit (the WAL cannot be written) fails the Store closed:
// that batch and every later write get an ErrStorage error and reads
// refuse, until the process reopens the directory.
//
// Built with the tag halley_fault_ackfirst, the committer acknowledges
// before committing (fault_ackfirst.go): a planted fault for the kill -9
// crash test, never for production.
//
// It knows nothing about HTTP, sockets or event loops.
package persist
