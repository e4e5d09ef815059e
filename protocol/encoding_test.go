package protocol

import (
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/halleypush/halley/persist"
)

// within reports whether b's bytes lie in buf's array (up to its cap).
func within(b, buf []byte) bool {
	if len(b) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(cap(buf))
}

// TestEncodeLazily: a write's encodings are built only for the transports
// that have readers, once, inside the write's own buffer; a message whose
// escapes outgrow the reserved room still encodes right.
func TestEncodeLazily(t *testing.T) {
	f := newFanFixture(t) // a WebSocket reader of john-fan on each loop
	_, op := newWriteOp(f.api, newFakeConn(), 1, []byte("john-fan"), []byte("t1"), true, []byte("hi"), false)
	op.d.seq = 1
	n := len(op.w.QName) + len(op.w.Tick) + len(op.w.Body)
	buf := unsafe.Slice(unsafe.StringData(op.w.QName), n+ezRooms(n-len(op.w.QName))) // newWriteOp's one buffer
	f.api.state[0].deliver(&op.d)
	f.api.state[1].deliver(&op.d)
	if len(op.d.sse.b) != 0 {
		t.Fatalf("SSE event built with no SSE reader: %q", op.d.sse.b)
	}
	frame := op.d.wsFrame()
	if !within(frame, buf) || !within(op.d.pollBody(), buf) {
		t.Fatal("the WebSocket frame or the pair it frames is not in the write's buffer")
	}
	for i, r := range f.readers {
		if sent := r.sentCopy(); len(sent) != 1 || sent[0] != string(frame) {
			t.Fatalf("reader %d got %q, want the shared frame", i, sent)
		}
	}

	// 300 quotes escape to 600 bytes: more than the room; the encoding
	// moves to its own array and is whole.
	body := strings.Repeat(`"`, 300)
	d := newDelivery("john-fan", persist.Message{Seq: 2, Tick: []byte("t2"), Body: []byte(body)})
	want := `{"code":"ok","messages":[["t2","` + strings.Repeat(`\"`, 300) + `"]]}`
	if got := string(d.pollBody()); got != want {
		t.Fatalf("poll body %q, want %q", got, want)
	}
	if got := string(d.sseEvent()); got != "id: t2\ndata: "+body+"\n\n" {
		t.Fatalf("SSE event %q", got)
	}
}

// TestEncodingSharedAcrossLoops: loops (goroutines) that need the same
// encoding at once get the same bytes, built once (run with -race).
func TestEncodingSharedAcrossLoops(t *testing.T) {
	d := &cfDelivery{topic: "john/fan", name: "fan", id: 7, text: []byte("hello\n")}
	d.reserve(nil)
	e := newDelivery("john-fan", persist.Message{Seq: 1, Tick: []byte("t"), Body: []byte("x")})
	const loops = 4
	got := make([][4][]byte, loops)
	var wg sync.WaitGroup
	for i := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = [4][]byte{d.wsFrame(), d.sseTail(), e.wsFrame(), e.sseEvent()}
		}()
	}
	wg.Wait()
	for i := 1; i < loops; i++ {
		for k := range got[i] {
			if unsafe.SliceData(got[i][k]) != unsafe.SliceData(got[0][k]) {
				t.Fatalf("loop %d built encoding %d again", i, k)
			}
		}
	}
	if s := string(d.sseTail()); s != "\ndata: {\"identifier\":\"fan\",\"id\":7,\"data\":\"hello\\n\"}\n\n" {
		t.Fatalf("Cometify event tail %q", s)
	}
}
