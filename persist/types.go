package persist

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SyncMode says when a write is acknowledged.
type SyncMode int

const (
	// SyncAlways acknowledges a write only after the WAL is fsynced
	// (group commit). The default.
	SyncAlways SyncMode = iota
	// SyncNone acknowledges after the write is applied in memory; a crash
	// of the machine (or, rarely, of the process) may lose acknowledged
	// writes. For benchmarks.
	SyncNone
)

// Options configures a Store. Zero fields take their documented defaults.
type Options struct {
	// Dir is the data directory. Required.
	Dir string
	// Sync is the durability mode. Default SyncAlways.
	Sync SyncMode
	// EZMaxQueue is how many newest messages a channel keeps (EZ-W-09).
	// Default 1000.
	EZMaxQueue int
	// EZMaxAge drops messages older than this (EZ-W-09). Default 24h.
	EZMaxAge time.Duration
	// TickMemory is how long a dropped message's tick stays known, so a
	// resume from it can be told it has a gap, counted from when
	// the message was written: keep it well above EZMaxAge. Default 7 days.
	TickMemory time.Duration
	// CFRetain is how long a Cometify push is retained (CF-P-08): older
	// pushes are never read, no longer answer a re-sent push_id as a
	// duplicate, and are deleted by the retention sweeper. Default 10
	// minutes.
	CFRetain time.Duration
	// MaxBatch caps how many writes share one commit. Default 4096.
	MaxBatch int
	// SweepInterval is how often the retention sweeper deletes
	// age-expired messages and forgotten ticks. Default 1 minute; negative
	// disables the sweeper goroutine (reads still hide expired messages).
	SweepInterval time.Duration
	// WriteQueue is how many writes may wait for the committer; a write
	// that finds it full is refused at once with an error wrapping
	// ErrStorage (503). Default 16384.
	WriteQueue int
	// CacheSize is Pebble's block cache in bytes. Default 64 MiB.
	CacheSize int64
	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
	// Logf receives storage errors worth a human's attention (Pebble's
	// error log, sweeper failures). Default log.Printf.
	Logf func(format string, args ...any)

	// StallTimeout is how long one commit may take before the Store
	// reports itself unhealthy (Healthy) and refuses new writes with
	// ErrStorage until that commit returns. Default 5 s.
	StallTimeout time.Duration
	// OnAccountChange, if set, is called after every account change (add,
	// rm, rotate, set) is durable and visible to lookups, with the
	// account's name, on the goroutine that made the change. The server
	// uses it to close what a revoked credential admitted.
	OnAccountChange func(username string)
	// AfterBatch, if set, is called once after the completions of one
	// committed group (every EZWrite and CFPush of one commit) have all
	// run, on the goroutine that ran them, before the next group's
	// completions. A caller that gathers work per completion (deliveries
	// to fan out on each event loop) posts it here: one task per group
	// per loop instead of one per message. It must not block. A write
	// refused before it was queued (EZWrite's "never blocks" cases) is
	// completed on the caller's goroutine and is followed by no
	// AfterBatch.
	AfterBatch func()

	// FS replaces the disk: error injection and stalls in tests, never in
	// production. Default vfs.Default, wrapped so that the directory is
	// 0700 and its files 0600 (C-14).
	FS vfs.FS

	// stallClock replaces the monotonic clock that times commits (stall
	// detection, Close's bound) in tests. Default: the real one.
	stallClock func() time.Duration
	// failLogEvery is how often a failed Store says so in the log. Default
	// one minute; tests shorten it.
	failLogEvery time.Duration
}

// Account is one API account.
type Account struct {
	Username string `json:"username"`
	// APIKey is the private EZComet write credential: never in a page,
	// a URL path or a list output.
	APIKey string `json:"api_key"`
	// CFAPIKey is the public Cometify apiKey: listen and push paths and
	// the md5 formulas of CF-P-03 and CF-L-06 use it. Distinct from every
	// APIKey.
	CFAPIKey  string `json:"cf_api_key"`
	APISecret string `json:"api_secret"`
	// MaxListenersPerIP caps the account's listeners (Cometify and
	// EZComet readers together) per client IP (CF-L-08, C-12).
	MaxListenersPerIP int `json:"max_listeners_per_ip"`
	// RequireSignature is "" (md5 secure or CF-P-10 signature accepted)
	// or "v2" (only the CF-P-10 HMAC signature is accepted).
	RequireSignature string `json:"require_signature,omitempty"`
	// ID names this incarnation of the account: new (random, non-zero)
	// on every add, so a name removed and added again is another account.
	ID uint64 `json:"id"`
	// CFKeyGen and SecretGen count rotations of CFAPIKey and APISecret,
	// so a listener can tell whether the credential that admitted it
	// still stands.
	CFKeyGen  uint32 `json:"cf_key_gen"`
	SecretGen uint32 `json:"secret_gen"`
}

// Credential names what RotateAccount replaces.
type Credential int

const (
	CredAPIKey   Credential = iota + 1 // the private EZComet api_key
	CredCFAPIKey                       // the public Cometify cf_api_key
	CredSecret                         // api_secret
)

// DefaultMaxListenersPerIP is an account's listener cap per client IP
// unless set otherwise (A-01, CF-L-08).
const DefaultMaxListenersPerIP = 30

// Message is one queued EZComet message. Its slices are owned by whoever
// received the Message.
type Message struct {
	Seq  uint64 // per channel, 1-based, strictly increasing, never reused
	Tick []byte
	Body []byte
	Time int64 // acceptance time, Unix nanoseconds
}

// EZWrite is one EZComet /write after the protocol validated it. Its
// bytes are the caller's again once its completion ran (the protocol
// reuses them for a later write): the store copies whatever it keeps
// past that, a new channel's qname for one.
type EZWrite struct {
	QName string // "<username>-<channel>"
	Tick  []byte // never empty; with NewTick, room for the generated tick
	Body  []byte
	Flush bool // delete every queued message; Tick and Body unused
	// AccountID is the ID of the account that authorized the write; the
	// committer refuses it with ErrRevoked when the qname's account is
	// gone or is another incarnation by then. 0 skips the check (tools
	// and tests; the protocol always sets it).
	AccountID uint64
	// NewTick says the client gave no tick: the committer writes one
	// into Tick (a UUID made from the message's seq and time, gentick.go;
	// Tick must be 36 bytes for that, another length is kept as given)
	// before the write completes, and the result's Msg.Tick is it. Such
	// a tick cannot be queued already, so the idempotence lookup (a
	// Pebble read) is skipped, and it needs no tick memory key.
	NewTick bool
}

// EZWriteResult is the outcome of an EZWrite, given to its completion.
type EZWriteResult struct {
	// Err is nil, ErrTickConflict, ErrClosed, an error wrapping
	// ErrStorage, or (for a write the protocol should have refused) an
	// error naming the bad qname or tick.
	Err error
	// Msg is the stored message (Seq, Tick, Body, Time); for a duplicate
	// it is the message already queued. Zero for a flush.
	Msg Message
	// Duplicate is true when the tick was already queued with the same
	// body (EZ-W-07): nothing was appended and nothing must be fanned out.
	Duplicate bool
}

// ReadResult is the answer of EZRead / EZReadAfter.
type ReadResult struct {
	// Messages are oldest first, at most the asked limit.
	Messages []Message
	// Cursor is the sequence number the reader now stands after: the Seq
	// of the last message returned, else the seq it asked to read after
	// (the tick's seq, or the channel's last seq when the tick was not
	// found and the queue is empty).
	Cursor uint64
	// Gap is true when some message after the reader's resume point was
	// dropped (retention or flush) and will never be delivered to it
	// . Always false for a tick the channel never had.
	Gap bool
	// More is true when further messages after Cursor are already queued
	// (the limit, in messages or in bytes, cut the answer).
	More bool
}

// ReadLimit bounds what one read returns: EZRead, EZReadAfter, CFRead.
// Messages caps the messages (<= 0: EZMaxQueue for EZComet reads, no cap
// for CFRead). Bytes caps the stored bytes the result holds, ticks and
// bodies or push texts, so that a reader whose answer is bounded in bytes
// (C-08) does not read, copy and drop far more than it sends (<= 0: no
// cap). A read returns its first message whatever its size: the reader
// always moves on.
type ReadLimit struct {
	Messages int
	Bytes    int
	// Buf, when set, holds the result: its Messages and their bytes live
	// in Buf's arrays, grown as needed and reused by the next read into
	// Buf, so a reader that reads again and again (a reader pool, a poll
	// answer read in parts) stops allocating once Buf has grown to its
	// reads (C-08: the garbage of reads the collector has not caught up
	// with is memory too). The result is valid until Buf's next read. Nil:
	// the read allocates a result the caller owns.
	Buf *ReadBuf
}

// ReadBuf is room for one read's result, reused read after read (see
// ReadLimit.Buf). The zero value is ready; not for concurrent reads.
type ReadBuf struct {
	msgs []Message
	data []byte
}

// add appends one message's bytes to b. The slices it stores may point
// at an array that a later add outgrew: done re-slices every message
// from the final one.
func (b *ReadBuf) add(seq uint64, t int64, tick, body []byte) {
	start := len(b.data)
	b.data = append(append(b.data, tick...), body...)
	mid, end := start+len(tick), len(b.data)
	b.msgs = append(b.msgs, Message{Seq: seq, Tick: b.data[start:mid:mid], Body: b.data[mid:end:end], Time: t})
}

// done points every message at the bytes' final array and returns them.
func (b *ReadBuf) done() []Message {
	off := 0
	for i := range b.msgs {
		m := &b.msgs[i]
		lt, lb := len(m.Tick), len(m.Body)
		m.Tick = b.data[off : off+lt : off+lt]
		off += lt
		m.Body = b.data[off : off+lb : off+lb]
		off += lb
	}
	if len(b.msgs) == 0 {
		return nil
	}
	return b.msgs
}

// allows reports whether a read holding n messages of got bytes may add
// one of size bytes.
func (l ReadLimit) allows(n, got, size int) bool {
	return n == 0 || l.Bytes <= 0 || got+size <= l.Bytes
}

// ErrTickConflict answers a write whose tick is queued with a different
// body (EZ-W-07, 409).
var ErrTickConflict = errors.New("persist: tick already queued with a different message")

// ErrPushConflict answers a Cometify push whose push_id is not above the
// topic's highest accepted id and is not a retained push with the same
// text (CF-P-04/06, 409).
var ErrPushConflict = errors.New("persist: push_id already used or not above the last accepted id")

// ErrRevoked answers a write or push whose account was removed (or
// removed and added again) after the request was authorized (401).
var ErrRevoked = errors.New("persist: account revoked")

// ErrSecretReplay answers a secret=0 push whose md5 secure was accepted
// with secret=1 on the same topic and is still retained (CF-P-09, 403).
var ErrSecretReplay = errors.New("persist: secure already used by a secret push")

// ErrNonceReused answers a push whose CF-P-10 nonce an accepted push of
// the account used within the nonce memory (403).
var ErrNonceReused = errors.New("persist: nonce already used")

// ErrAccountExists, ErrNoAccount are returned by account management.
var (
	ErrAccountExists = errors.New("persist: account exists")
	ErrNoAccount     = errors.New("persist: no such account")
)

// ErrStorage wraps every storage failure (503). After a failed commit the
// Store refuses further writes with it until it is reopened, because Pebble
// cannot tell which part of a failed batch reached the disk.
var ErrStorage = errors.New("persist: storage failure")

// ErrClosed is returned (or given to completions) after Close.
var ErrClosed = errors.New("persist: store closed")

// ChannelStat describes one EZComet channel.
type ChannelStat struct {
	QName   string `json:"qname"`
	Queued  int    `json:"queued"`
	LastSeq uint64 `json:"last_seq"`
}

// SyncLatencyBounds are the upper bounds of StoreStats.SyncLatency's
// buckets; the last bucket counts everything slower.
var SyncLatencyBounds = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

// StoreStats are monotonic counters since Open, for /metrics.
type StoreStats struct {
	WritesCommitted uint64 // EZWrites acknowledged without error (appends, duplicates, flushes)
	Appended        uint64 // messages appended
	Duplicates      uint64 // idempotent re-sends (EZ-W-07)
	Conflicts       uint64 // ErrTickConflict answers
	Flushes         uint64 // flushes (EZ-W-06)
	Batches         uint64 // Pebble commits by the committer
	BatchSizeSum    uint64 // writes over all Batches; mean batch = BatchSizeSum/Batches
	SyncCount       uint64 // commits that waited for an fsync
	SyncNanosSum    uint64 // time spent in those commits
	// SyncLatency counts synced commits per bucket of SyncLatencyBounds
	// (not cumulative); the last element counts the slower ones.
	SyncLatency        [len(SyncLatencyBounds) + 1]uint64
	DroppedByRetention uint64 // messages deleted by count or age retention
	DroppedByFlush     uint64 // messages deleted by flushes
	TicksForgotten     uint64 // tick memories deleted by the sweeper
	Errors             uint64 // EZ writes and CF pushes answered with a storage error
	CFPushes           uint64 // Cometify pushes accepted (appended)
	CFDuplicates       uint64 // re-sent push_ids answered as duplicates (CF-P-06)
	CFConflicts        uint64 // ErrPushConflict answers
	CFDropped          uint64 // pushes deleted by age retention (CF-P-08)
	// Refused counts writes and pushes refused before queueing because
	// the Store was failed or stalled or the write queue was full (503).
	Refused uint64
	// Revoked counts writes and pushes answered ErrRevoked.
	Revoked         uint64
	CFSecretReplays uint64 // ErrSecretReplay answers (CF-P-09)
	CFNoncesReused  uint64 // ErrNonceReused answers (CF-P-10)
}
