package protocol

import "sync"

// encoding is one transport's bytes of a delivered message (a WebSocket
// frame, an SSE event, a poll answer): built the first time a subscriber
// of that transport needs it, once, then shared read-only by every loop.
// Most messages have subscribers of one transport or none, so building
// every transport eagerly was mostly wasted work.
//
// Loops are different goroutines, hence the sync.Once: a loop that needs
// bytes another loop is building waits for that one message's encoding
// (CPU work bounded by the message size, never I/O) rather than building
// its own copy. After the build every use is one atomic load.
type encoding struct {
	once sync.Once
	b    []byte // before the build: the empty room reserved for it
}

// get returns the bytes, building them with build(room) the first time.
// build appends to the reserved room; when the message escapes to more
// than the room holds, append moves it to a new array.
func (e *encoding) get(build func(room []byte) []byte) []byte {
	e.once.Do(func() { e.b = build(e.b) })
	return e.b
}

// encodingRoom is the room reserved for one transport's encoding of a
// message of n stored bytes: its JSON or SSE framing, and a quarter more
// for escapes (quotes, line breaks), rounded to 8 bytes so that rooms
// built by different loops share no word.
func encodingRoom(n int) int { return (n + n/4 + 64 + 7) &^ 7 }

// carve cuts empty rooms of size bytes each, 8-byte aligned, from buf's
// spare capacity, which must hold them and 7 bytes more.
func carve(buf []byte, size int, rooms ...*[]byte) {
	off := (len(buf) + 7) &^ 7
	for _, r := range rooms {
		*r = buf[off : off : off+size]
		off += size
	}
}
