package persist

import "encoding/binary"

// Key layout. Every key starts with a one-byte kind and a NUL; a qname never
// holds NUL, so "q\x00a-b\x00" never prefixes a key of channel "a-bc".
//
//	a\x00<username>               → account JSON
//	m\x00<qname>                  → channelMeta: first seq (8) | last seq (8)
//	q\x00<qname>\x00<seq BE 8>    → message: time (8) | len(tick) (1) | tick | body
//	t\x00<qname>\x00<tick>        → tick memory: seq (8) | message time (8); none for a generated tick (gentick.go)
//	c\x00<topic>\x00<id BE 8>     → Cometify push: time (8) | secret (1) | text
//	n\x00<topic>                  → topicMeta: last id (8) | highest dropped id (8)
//	s\x00<topic>\x00<md5 16>      → secret record (CF-P-09): acceptance time (8)
//	S\x00<time 8><topic>\x00<md5>  → (empty) expiry index of secret records
//	o\x00<username>\x00<nonce>     → nonce record (CF-P-10): acceptance time (8)
//	O\x00<time 8><username>\x00<nonce> → (empty) expiry index of nonce records
//
// Integers are big-endian so that keys sort by sequence number, and
// expiry index entries by time (Unix ns). An index entry is its record's
// key with the kind changed and the time inserted: the sweeper walks the
// index up to the cutoff and deletes each record unless a later push
// renewed it (its time differs). A username never holds '-', '/' or NUL,
// so "<username>-", "<username>/" and "<username>\x00" prefix exactly its
// channels, topics and nonces: removing an account deletes those ranges
// (its expiry index entries are left to the sweeper).
const (
	kindAccount      = 'a'
	kindMeta         = 'm'
	kindQueue        = 'q'
	kindTick         = 't'
	kindCFPush       = 'c'
	kindCFMeta       = 'n'
	kindSecret       = 's'
	kindSecretExpiry = 'S'
	kindNonce        = 'o'
	kindNonceExpiry  = 'O'
)

// maxTickLen bounds a tick so that its length fits the one-byte prefix of a
// message value (the protocol allows 64).
const maxTickLen = 255

// maxQNameLen bounds a qname so that keys stay small (the protocol allows
// 64).
const maxQNameLen = 255

// maxTopicLen bounds a Cometify topic for the same reason (the protocol
// allows a username plus 61).
const maxTopicLen = 255

// maxKeyLen is the longest key: a queue or tick key of the longest qname.
const maxKeyLen = 2 + maxQNameLen + 1 + max(8, maxTickLen)

func appendPrefix(dst []byte, kind byte, name string) []byte {
	dst = append(dst, kind, 0)
	return append(dst, name...)
}

func accountKey(dst []byte, username string) []byte {
	return appendPrefix(dst, kindAccount, username)
}

func metaKey(dst []byte, qname string) []byte {
	return appendPrefix(dst, kindMeta, qname)
}

func queueKey(dst []byte, qname string, seq uint64) []byte {
	dst = appendPrefix(dst, kindQueue, qname)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func tickKey(dst []byte, qname string, tick []byte) []byte {
	dst = appendPrefix(dst, kindTick, qname)
	dst = append(dst, 0)
	return append(dst, tick...)
}

// kindBounds returns [lower, upper) covering every key of one kind.
func kindBounds(kind byte) (lower, upper []byte) {
	return []byte{kind, 0}, []byte{kind, 1}
}

func encodeMeta(dst []byte, first, last uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, first)
	return binary.BigEndian.AppendUint64(dst, last)
}

func decodeMeta(v []byte) (first, last uint64, ok bool) {
	if len(v) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), true
}

func encodeMessage(dst []byte, unixNano int64, tick, body []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano))
	dst = append(dst, byte(len(tick)))
	dst = append(dst, tick...)
	return append(dst, body...)
}

// decodeMessage splits a message value; tick and body alias v.
func decodeMessage(v []byte) (unixNano int64, tick, body []byte, ok bool) {
	if len(v) < 9 || len(v) < 9+int(v[8]) {
		return 0, nil, nil, false
	}
	n := 9 + int(v[8])
	return int64(binary.BigEndian.Uint64(v)), v[9:n], v[n:], true
}

func encodeTick(dst []byte, seq uint64, unixNano int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return binary.BigEndian.AppendUint64(dst, uint64(unixNano))
}

func decodeTick(v []byte) (seq uint64, unixNano int64, ok bool) {
	if len(v) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:])), true
}

func cfMetaKey(dst []byte, topic string) []byte {
	return appendPrefix(dst, kindCFMeta, topic)
}

func cfPushKey(dst []byte, topic string, id uint64) []byte {
	dst = appendPrefix(dst, kindCFPush, topic)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, id)
}

// encodeMeta and decodeMeta also serve topicMeta: two integers either way.

func encodeCFPush(dst []byte, unixNano int64, secret bool, text []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano))
	var flag byte
	if secret {
		flag = 1
	}
	dst = append(dst, flag)
	return append(dst, text...)
}

// decodeCFPush splits a push value; text aliases v.
func decodeCFPush(v []byte) (unixNano int64, secret bool, text []byte, ok bool) {
	if len(v) < 9 {
		return 0, false, nil, false
	}
	return int64(binary.BigEndian.Uint64(v)), v[8] == 1, v[9:], true
}

// idFromKey returns the sequence number or push id ending a queue or
// push key.
func idFromKey(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

// secretKey is the CF-P-09 record of digest on topic.
func secretKey(dst []byte, topic string, digest *[16]byte) []byte {
	dst = appendPrefix(dst, kindSecret, topic)
	dst = append(dst, 0)
	return append(dst, digest[:]...)
}

// nonceKey is the CF-P-10 record of nonce for username.
func nonceKey(dst []byte, username, nonce string) []byte {
	dst = appendPrefix(dst, kindNonce, username)
	dst = append(dst, 0)
	return append(dst, nonce...)
}

// expiryKey is the expiry index entry of the record whose key is record,
// made at unixNano.
func expiryKey(dst []byte, kind byte, unixNano int64, record []byte) []byte {
	dst = append(dst, kind, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(unixNano))
	return append(dst, record[2:]...)
}
