package persist

import (
	"errors"
	"time"
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
	// resume from it can be told it has a gap. Default 7 days.
	TickMemory time.Duration
	// MaxBatch caps how many writes share one commit. Default 4096.
	MaxBatch int
	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
}

// Account is one API account.
type Account struct {
	Username          string `json:"username"`
	APIKey            string `json:"api_key"`
	APISecret         string `json:"api_secret"`
	MaxListenersPerIP int    `json:"max_listeners_per_ip"`
}

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

// EZWrite is one EZComet /write after the protocol validated it.
type EZWrite struct {
	QName string // "<username>-<channel>"
	Tick  []byte // never empty: the protocol generates a UUID when absent
	Body  []byte
	Flush bool // delete every queued message; Tick and Body unused
}

// EZWriteResult is the outcome of an EZWrite, given to its completion.
type EZWriteResult struct {
	// Err is nil, ErrTickConflict, or a storage error (wrapped).
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
	// (the limit cut the answer).
	More bool
}

// ErrTickConflict answers a write whose tick is queued with a different
// body (EZ-W-07, 409).
var ErrTickConflict = errors.New("persist: tick already queued with a different message")

// ErrAccountExists, ErrNoAccount are returned by account management.
var (
	ErrAccountExists = errors.New("persist: account exists")
	ErrNoAccount     = errors.New("persist: no such account")
)

// ErrClosed is returned (or given to completions) after Close.
var ErrClosed = errors.New("persist: store closed")
