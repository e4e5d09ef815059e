package bench

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// recSink records what a wsStream passes on.
type recSink struct{ got []string }

func (r *recSink) wsFrame(op byte, p []byte) error {
	r.got = append(r.got, fmt.Sprintf("%x:%s", op, p))
	if op == 0x8 {
		return errors.New("closed")
	}
	return nil
}

// srvFrame is a server frame (unmasked unless mask is set).
func srvFrame(fin bool, op byte, p []byte, mask []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var m byte
	if mask != nil {
		m = 0x80
	}
	var b []byte
	switch n := len(p); {
	case n < 126:
		b = []byte{b0, m | byte(n)}
	case n < 1<<16:
		b = []byte{b0, m | 126, byte(n >> 8), byte(n)}
	default:
		b = []byte{b0, m | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	if mask != nil {
		b = append(b, mask...)
		for i, c := range p {
			b = append(b, c^mask[i%4])
		}
		return b
	}
	return append(b, p...)
}

func TestWSStreamSplitEverywhere(t *testing.T) {
	long := bytes.Repeat([]byte("y"), 300)   // 16-bit length
	huge := bytes.Repeat([]byte("z"), 70000) // 64-bit length
	var stream []byte
	stream = append(stream, srvFrame(true, 1, []byte(`{"since":"a:0"}`), nil)...)
	stream = append(stream, srvFrame(true, 1, []byte("1.2.x"), nil)...)
	stream = append(stream, srvFrame(true, 9, []byte("pi"), nil)...)
	stream = append(stream, srvFrame(false, 1, []byte("ab"), nil)...)
	stream = append(stream, srvFrame(true, 9, nil, nil)...) // a ping inside a fragmented message
	stream = append(stream, srvFrame(false, 0, []byte("c"), nil)...)
	stream = append(stream, srvFrame(true, 0, []byte("d"), nil)...)
	stream = append(stream, srvFrame(true, 2, long, nil)...)
	stream = append(stream, srvFrame(true, 1, []byte("masked"), []byte{1, 2, 3, 4})...)
	stream = append(stream, srvFrame(true, 0xA, nil, nil)...)
	stream = append(stream, srvFrame(true, 1, nil, nil)...)
	want := []string{"1:" + `{"since":"a:0"}`, "1:1.2.x", "9:pi", "9:", "1:abcd", "2:" + string(long), "1:masked", "a:", "1:"}
	check := func(name string, chunks [][]byte) {
		t.Helper()
		var s wsStream
		var r recSink
		for _, c := range chunks {
			if err := s.feed(append([]byte(nil), c...), &r); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if len(r.got) != len(want) {
			t.Fatalf("%s: %d frames, want %d", name, len(r.got), len(want))
		}
		for i := range want {
			if r.got[i] != want[i] {
				t.Fatalf("%s: frame %d: %.40q, want %.40q", name, i, r.got[i], want[i])
			}
		}
		if len(s.left) != 0 || s.frag != nil || s.fragOp != 0 {
			t.Fatalf("%s: state left over: %d %d %d", name, len(s.left), len(s.frag), s.fragOp)
		}
	}
	check("one read", [][]byte{stream})
	for i := 0; i <= len(stream); i++ {
		check(fmt.Sprintf("split at %d", i), [][]byte{stream[:i], stream[i:]})
	}
	// Every byte its own read, and two splits around every header.
	one := make([][]byte, len(stream))
	for i := range stream {
		one[i] = stream[i : i+1]
	}
	check("byte by byte", one)
	for i := 0; i+3 <= len(stream) && i < 200; i++ {
		check(fmt.Sprintf("split at %d,%d", i, i+3), [][]byte{stream[:i], stream[i : i+3], stream[i+3:]})
	}
	// A 64-bit length, split in and around its header and at its end.
	stream = append(stream, srvFrame(true, 1, huge, nil)...)
	stream = append(stream, srvFrame(true, 1, []byte("2.3."), nil)...)
	want = append(want, "1:"+string(huge), "1:2.3.")
	h := len(stream) - len(huge) - 20
	for i := h; i < h+20; i++ {
		check(fmt.Sprintf("split at %d", i), [][]byte{stream[:i], stream[i:]})
	}
	for i := len(stream) - 10; i <= len(stream); i++ {
		check(fmt.Sprintf("split at %d", i), [][]byte{stream[:i], stream[i:]})
	}
}

func TestWSStreamCloseAndErrors(t *testing.T) {
	var s wsStream
	var r recSink
	in := append(srvFrame(true, 1, []byte("1.2."), nil), srvFrame(true, 8, []byte{3, 232}, nil)...)
	in = append(in, srvFrame(true, 1, []byte("after"), nil)...)
	if err := s.feed(in, &r); err == nil || len(r.got) != 2 || r.got[1] != "8:\x03\xe8" {
		t.Fatalf("%v %q", err, r.got)
	}
	for name, b := range map[string][]byte{
		"continuation without start": srvFrame(true, 0, []byte("x"), nil),
		"fragmented ping":            srvFrame(false, 9, nil, nil),
		"long ping":                  srvFrame(true, 9, bytes.Repeat([]byte("p"), 126), nil),
		"new message in a fragment":  append(srvFrame(false, 1, []byte("a"), nil), srvFrame(true, 1, []byte("b"), nil)...),
		"too long":                   {0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0},
	} {
		var s wsStream
		if err := s.feed(b, &recSink{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseFanPayloadNoAllocs(t *testing.T) {
	p := fanPayload(17, 1795438800123456789, 100)
	if seq, ts, ok := parseFanPayload(p); !ok || seq != 17 || ts != 1795438800123456789 {
		t.Fatal(seq, ts, ok)
	}
	for _, bad := range []string{"", "1", "1.", "1.2", ".1.", "1..", "a.1.", "99999999999999999999.1.", "1.99999999999999999999."} {
		if _, _, ok := parseFanPayload([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	f := []byte(`{"identifier":"bxf0","id":12,"data":"` + string(p) + `"}`)
	e := []byte(`["00000000000000000001","` + string(p) + `"]`)
	if n := testing.AllocsPerRun(100, func() {
		for _, k := range []struct {
			kind  string
			frame []byte
		}{{"cometify", f}, {"halley", e}, {"nchan", p}} {
			m, _, _, _ := mustKind(k.kind).next(k.frame)
			parseFanPayload(m)
		}
	}); n != 0 {
		t.Fatalf("%v allocs per frame", n)
	}
}
