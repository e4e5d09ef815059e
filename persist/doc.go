// Package persist owns durable state in Pebble: accounts, EZComet channel
// queues with per-channel sequence numbers, the tick → sequence index,
// retention by count and age, and flush; Cometify pushes per topic with
// their push ids, retained for Options.CFRetain; and the replay guards of
// Cometify pushes (CF-P-09 secret digests, CF-P-10 nonces).
//
// Writes are acknowledged only after the WAL is synced, through a commit
// pipeline (pipeline.go): the committer goroutine drains every pending
// write and push into one group, builds one Pebble batch from it and
// applies it without waiting for its fsync; while Pebble syncs it, the
// committer builds and applies the next group. The syncer goroutine waits
// for each group's fsync in order, publishes it to readers and calls its
// completions in acceptance order, then Options.AfterBatch. When a
// completion runs, its message is already visible to reads. Reads are
// synchronous and safe from any goroutine.
//
// Goroutines: the committer, the single writer of everything — every
// EZWrite and CFPush (one order, one op interface: ezOp, cfOp), the
// retention sweep and every account change (both run once the groups in
// flight are published, in queue order) —; the syncer; and a
// housekeeping goroutine that asks for sweeps and logs a failed Store.
// Account lookups read an immutable snapshot without locks or
// allocations.
//
// In memory: every account, per channel the range first..last of the
// sequence numbers it retains (deletions always remove a prefix, so the
// retained messages are contiguous), and per topic the highest push id
// ever accepted, the highest one dropped by retention (every accepted id
// above it is retained; ids may skip, since pushes may give them) and
// the time of its newest secret digest. On disk (see keys.go): accounts,
// channel and topic metadata, messages by (qname, seq), pushes by
// (topic, id), tick memories by (qname, tick) that outlive their message
// for Options.TickMemory so that a resume from a dropped tick reports a
// gap, and the replay records with their expiry index.
//
// Accounts. An account has a private api_key (EZComet
// writes), a public cf_api_key (Cometify paths), an api_secret, an id
// that names its incarnation and generations of its rotated credentials.
// Every change is durable before it returns and then reported to
// Options.OnAccountChange. Removing an account deletes all its data
// (channels "<user>-...", topics "<user>/...", its records) and is
// ordered after the writes already queued; a write or push authorized for
// an incarnation that is no longer current when the committer builds its
// group gets ErrRevoked (EZWrite.AccountID, CFPush.AccountID). A name
// added again starts empty.
//
// Replay guards (committer.buildCF, replay.go). The outcome of a push
// ranks ErrRevoked, then ErrSecretReplay (a secret=0 push carrying the md5
// secure of a retained secret push on its topic) and ErrNonceReused (a
// nonce an accepted push of the account used within NonceMemory), then
// the id rules of CF-P-04/06 (ids are 1..2^63-1). A refused push records
// nothing; pushes of one batch see each other.
//
// Storage faults (C-09, C-10; health.go). A failed commit (the WAL cannot
// be written or synced) fails the Store: that batch and everything after
// it get an ErrStorage error, never ok; Healthy reports it; new writes
// are refused at once; reads refuse too, since Pebble's memtable may hold
// the failed batch; the log says once a minute that the process must be
// restarted. A commit running longer than Options.StallTimeout makes
// Healthy report a stall and new writes are refused at once, while those
// already queued wait and complete as the commit does, after which the
// Store is healthy again; reads keep working. The write queue is bounded
// and never blocks its caller: full, it refuses. Close waits for the
// committer at most until its current call into Pebble has run for twice
// StallTimeout without progress, then gives up with an error and starts
// nothing more in Pebble (a group already applied is still answered as
// its fsync turns out).
//
// Files (C-14; privatefs.go). With the default disk the data directory is
// created 0700 and every file in it 0600, whatever the umask (which is
// left alone); an existing directory is tightened at Open. The same
// file system writes a fresh WAL ahead in zeros (walfill.go), so that a
// group commit's fdatasync overwrites the file instead of growing it, as
// Pebble's recycled WALs already are.
//
// Migration (migrate.go). Accounts stored by 5a75858 and earlier have a
// single api_key, which every Cometify page carried. Open makes it the
// account's cf_api_key (pages and listen URLs keep working), gives the
// account a fresh private api_key for EZComet writes and an id, writes
// them durably, and lists them in Migrated for the opener to show once:
// EZComet publishers must switch to the new key. Data is untouched.
//
// Backups (backup.go). Checkpoint syncs the WAL and writes a Pebble
// checkpoint while writers run: it holds every write acknowledged before
// the call. Restore copies a backup into a staging directory beside the
// target, opens it to check it, then renames it into an empty or absent
// data directory. Built with the tag halley_fault_backupcopy, Checkpoint
// copies the directory without the WAL instead (a planted fault for the
// backup test).
//
// Built with the tag halley_fault_ackfirst, the committer acknowledges
// before committing (fault_ackfirst.go): a planted fault for the kill -9
// crash test, never for production.
//
// It knows nothing about HTTP, sockets or event loops.
package persist
