package engine

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// TestWebSocketHandshakeChecks: C-13's opening handshake: the key must be
// base64 of 16 bytes (400), the version 13 (426 with the version the
// server speaks).
func TestWebSocketHandshakeChecks(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, testOptions(), h)
	req := func(version, key string) string {
		s := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		if version != "" {
			s += "Sec-WebSocket-Version: " + version + "\r\n"
		}
		if key != "" {
			s += "Sec-WebSocket-Key: " + key + "\r\n"
		}
		return s + "\r\n"
	}
	cases := []struct {
		name, in string
		status   int
	}{
		{"valid", req("13", "dGhlIHNhbXBsZSBub25jZQ=="), 101},
		{"version 8", req("8", "dGhlIHNhbXBsZSBub25jZQ=="), 426},
		{"no version", req("", "dGhlIHNhbXBsZSBub25jZQ=="), 426},
		{"no key", req("13", ""), 400},
		{"key not base64", req("13", "!!!!!!!!!!!!!!!!!!!!!!=="), 400},
		{"key of 18 bytes", req("13", "dGhlIHNhbXBsZSBub25jZQAA"), 400},
		{"key of 15 bytes", req("13", "dGhlIHNhbXBsZSBub25j===="), 400},
		{"key bad padding bits", req("13", "dGhlIHNhbXBsZSBub25jZR=="), 400},
		{"version before key", req("12", "short"), 426},
	}
	for _, tc := range cases {
		c, br := dial(t, addr)
		io.WriteString(c, tc.in)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if tc.status == 426 && resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Fatalf("%s: 426 without Sec-WebSocket-Version: 13", tc.name)
		}
		c.Close()
	}
}

// clientFrameBytes is one masked client frame; rsv and op are raw bits.
func clientFrameBytes(fin bool, rsv byte, op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Mask: [4]byte{7, 1, 8, 2}, Length: int64(len(payload))}
	var b bytes.Buffer
	if err := ws.WriteHeader(&b, h); err != nil {
		panic(err)
	}
	p := bytes.Clone(payload)
	ws.Cipher(p, h.Mask, 0)
	b.Write(p)
	return b.Bytes()
}

func closeBody(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// wsExchange sends frames on a fresh WebSocket and returns what the
// server sent back, up to its close frame, the answer to a ping "probe",
// or the end of the stream: each frame as "op:payload", a close as
// "close:code".
func wsExchange(t *testing.T, addr string, frames ...[]byte) []string {
	t.Helper()
	c, br := wsDial(t, addr)
	if _, err := c.Write(bytes.Join(frames, nil)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		f, err := readWSFrame(br)
		if err != nil {
			return got
		}
		switch f.Header.OpCode {
		case ws.OpClose:
			if len(f.Payload) == 0 {
				return append(got, "close:none")
			}
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return append(got, fmt.Sprintf("close:%d", code))
		case ws.OpPing:
			continue // the server's keep-alive
		}
		op := map[ws.OpCode]string{ws.OpPong: "pong", ws.OpText: "text", ws.OpBinary: "binary"}[f.Header.OpCode]
		got = append(got, fmt.Sprintf("%s:%s", op, f.Payload))
		if f.Header.OpCode == ws.OpPong && string(f.Payload) == "probe" {
			return got
		}
	}
}

// TestWebSocketRFC6455: client frames are held to what RFC 6455 asks of
// a server (C-13), though their data is ignored: text is UTF-8 across
// fragments (1007, failing as soon as the bytes cannot be UTF-8),
// fragmentation is tracked (1002), close codes and reasons are checked,
// pings are answered with their payload, also inside a fragmented
// message. Each case ends with a ping so that a connection that stayed
// open shows it.
func TestWebSocketRFC6455(t *testing.T) {
	h := newTestHandler()
	_, addr := startServer(t, testOptions(), h)
	kosme := []byte("κόσμε")
	probe := clientFrameBytes(true, 0, ws.OpPing, []byte("probe"))
	fin := func(op ws.OpCode, p []byte) []byte { return clientFrameBytes(true, 0, op, p) }
	frag := func(op ws.OpCode, p []byte) []byte { return clientFrameBytes(false, 0, op, p) }
	cases := []struct {
		name   string
		frames [][]byte
		want   string
	}{
		{"valid text", [][]byte{fin(ws.OpText, kosme), probe}, "pong:probe"},
		{"text split inside a character", [][]byte{frag(ws.OpText, kosme[:3]), frag(ws.OpContinuation, kosme[3:4]), fin(ws.OpContinuation, kosme[4:]), probe}, "pong:probe"},
		{"empty fragments", [][]byte{frag(ws.OpText, nil), frag(ws.OpContinuation, nil), fin(ws.OpContinuation, nil), probe}, "pong:probe"},
		{"invalid text", [][]byte{fin(ws.OpText, []byte{0xce, 0xba, 0xff}), probe}, "close:1007"},
		{"surrogate", [][]byte{fin(ws.OpText, []byte{0xed, 0xa0, 0x80}), probe}, "close:1007"},
		{"over U+10FFFF", [][]byte{fin(ws.OpText, []byte{0xf4, 0x90, 0x80, 0x80}), probe}, "close:1007"},
		{"overlong", [][]byte{fin(ws.OpText, []byte{0xc0, 0xaf}), probe}, "close:1007"},
		{"invalid in a later fragment", [][]byte{frag(ws.OpText, kosme), fin(ws.OpContinuation, []byte{0x80}), probe}, "close:1007"},
		{"fail fast, message unfinished", [][]byte{frag(ws.OpText, []byte{0xce, 0xba, 0xf4, 0x90})}, "close:1007"},
		{"ends inside a character", [][]byte{frag(ws.OpText, kosme[:3]), fin(ws.OpContinuation, nil), probe}, "close:1007"},
		{"binary is not checked", [][]byte{fin(ws.OpBinary, []byte{0xff, 0xfe}), probe}, "pong:probe"},
		{"continuation without start", [][]byte{fin(ws.OpContinuation, []byte("x")), probe}, "close:1002"},
		{"text inside a message", [][]byte{frag(ws.OpText, []byte("a")), fin(ws.OpText, []byte("b")), probe}, "close:1002"},
		{"binary inside a message", [][]byte{frag(ws.OpText, []byte("a")), fin(ws.OpBinary, []byte("b")), probe}, "close:1002"},
		{"continuation after the end", [][]byte{frag(ws.OpBinary, []byte("a")), fin(ws.OpContinuation, []byte("b")), fin(ws.OpContinuation, []byte("c")), probe}, "close:1002"},
		{"ping inside a message", [][]byte{frag(ws.OpText, kosme[:1]), fin(ws.OpPing, []byte("in")), fin(ws.OpContinuation, kosme[1:]), probe}, "pong:in pong:probe"},
		{"ping payload", [][]byte{fin(ws.OpPing, bytes.Repeat([]byte("p"), 125)), probe}, "pong:" + strings.Repeat("p", 125) + " pong:probe"},
		{"pong ignored", [][]byte{fin(ws.OpPong, []byte("x")), probe}, "pong:probe"},
		{"rsv", [][]byte{clientFrameBytes(true, 2, ws.OpText, []byte("x")), probe}, "close:1002"},
		{"reserved opcode", [][]byte{fin(0xb, nil), probe}, "close:1002"},
		{"reserved data opcode", [][]byte{fin(0x3, nil), probe}, "close:1002"},
		{"big ping", [][]byte{fin(ws.OpPing, make([]byte, 126)), probe}, "close:1002"},
		{"fragmented ping", [][]byte{frag(ws.OpPing, nil), probe}, "close:1002"},
		{"close empty", [][]byte{fin(ws.OpClose, nil), probe}, "close:none"},
		{"close 1000", [][]byte{fin(ws.OpClose, closeBody(1000, "bye")), probe}, "close:1000"},
		{"close 1001", [][]byte{fin(ws.OpClose, closeBody(1001, "")), probe}, "close:1001"},
		{"close 1003", [][]byte{fin(ws.OpClose, closeBody(1003, "")), probe}, "close:1003"},
		{"close 1007", [][]byte{fin(ws.OpClose, closeBody(1007, "")), probe}, "close:1007"},
		{"close 1011", [][]byte{fin(ws.OpClose, closeBody(1011, "")), probe}, "close:1011"},
		{"close 3000", [][]byte{fin(ws.OpClose, closeBody(3000, "")), probe}, "close:3000"},
		{"close 4999", [][]byte{fin(ws.OpClose, closeBody(4999, "κ")), probe}, "close:4999"},
		{"close 1 byte", [][]byte{fin(ws.OpClose, []byte{3}), probe}, "close:1002"},
		{"close 0", [][]byte{fin(ws.OpClose, closeBody(0, "")), probe}, "close:1002"},
		{"close 999", [][]byte{fin(ws.OpClose, closeBody(999, "")), probe}, "close:1002"},
		{"close 1004", [][]byte{fin(ws.OpClose, closeBody(1004, "")), probe}, "close:1002"},
		{"close 1005", [][]byte{fin(ws.OpClose, closeBody(1005, "")), probe}, "close:1002"},
		{"close 1006", [][]byte{fin(ws.OpClose, closeBody(1006, "")), probe}, "close:1002"},
		{"close 1012", [][]byte{fin(ws.OpClose, closeBody(1012, "")), probe}, "close:1002"},
		{"close 1015", [][]byte{fin(ws.OpClose, closeBody(1015, "")), probe}, "close:1002"},
		{"close 2999", [][]byte{fin(ws.OpClose, closeBody(2999, "")), probe}, "close:1002"},
		{"close 5000", [][]byte{fin(ws.OpClose, closeBody(5000, "")), probe}, "close:1002"},
		{"close reason not UTF-8", [][]byte{fin(ws.OpClose, closeBody(1000, "\xff")), probe}, "close:1007"},
		{"close inside a message", [][]byte{frag(ws.OpText, []byte("a")), fin(ws.OpClose, closeBody(1000, "")), probe}, "close:1000"},
	}
	for _, tc := range cases {
		if got := strings.Join(wsExchange(t, addr, tc.frames...), " "); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestUTF8StepMatchesStdlib(t *testing.T) {
	check := func(p []byte) {
		want := utf8.Valid(p)
		for cut := 0; cut <= len(p); cut++ {
			s := utf8Step(utf8Step(utf8Accept, p[:cut]), p[cut:])
			if (s == utf8Accept) != want {
				t.Fatalf("%x cut at %d: state %d, utf8.Valid %v", p, cut, s, want)
			}
		}
	}
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			check([]byte{byte(a), byte(b)})
		}
	}
	rng := rand.New(rand.NewSource(3))
	alphabet := []byte{0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	for range 200000 {
		p := make([]byte, 1+rng.Intn(12))
		for i := range p {
			p[i] = alphabet[rng.Intn(len(alphabet))]
		}
		check(p)
	}
	for r := rune(0); r <= utf8.MaxRune; r += 1 + rune(rng.Intn(7)) {
		check(utf8.AppendRune([]byte("ascii run of more than eight bytes "), r))
	}
}

// wsOutcome is what a connection makes of a stream of client frames:
// each frame read, then the verdict that ended it (0: the bytes ran out).
type wsOutcome struct {
	frames  []string
	verdict uint16
}

func (o wsOutcome) String() string { return fmt.Sprintf("%q end %d", o.frames, o.verdict) }

// feedFrames reads in as processWS does, in pieces ending at cuts (the
// last one len(in)); the message state carries over. Frames are unmasked
// in place, so it works on a copy. check, when set, sees each frame read.
func feedFrames(in []byte, cuts []int, check func(f clientFrame, verdict uint16)) wsOutcome {
	in = bytes.Clone(in)
	var out wsOutcome
	var st wsMsgState
	start, need := 0, 0
	for _, end := range cuts {
		for {
			buf := in[start:end]
			if len(buf) < 2 || need > len(buf) {
				break
			}
			f, v := readClientFrame(buf, &st, 1000)
			if check != nil && v != frameNeedMore {
				check(f, v)
			}
			if v == frameNeedMore {
				need = f.size
				break
			}
			if v != 0 {
				out.verdict = v
				return out
			}
			out.frames = append(out.frames, fmt.Sprintf("%v %v %q %d", f.op, f.fin, f.payload, f.code))
			start += f.size
			need = 0
			if f.op == ws.OpClose {
				return out
			}
		}
	}
	return out
}

var (
	utf8PrefixesOnce sync.Once
	utf8Prefixes     map[string]bool
)

// validUTF8Prefix reports whether p can still become valid UTF-8.
func validUTF8Prefix(p []byte) bool {
	utf8PrefixesOnce.Do(func() {
		utf8Prefixes = map[string]bool{}
		var b [4]byte
		for r := rune(0); r <= utf8.MaxRune; r++ {
			if !utf8.ValidRune(r) {
				continue
			}
			n := utf8.EncodeRune(b[:], r)
			for k := 1; k < n; k++ {
				utf8Prefixes[string(b[:k])] = true
			}
		}
	})
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size <= 1 {
			return len(p)-i < 4 && utf8Prefixes[string(p[i:])]
		}
		i += size
	}
	return true
}

// FuzzWSFrames: a stream of client frames through the frame reader and
// its message state: never a panic; the same frames and verdict however
// the stream is split; and the UTF-8 verdicts agree with unicode/utf8 (a
// text message is refused exactly when it can no longer be UTF-8, or ends
// without being it; a close reason likewise).
func FuzzWSFrames(f *testing.F) {
	seeds := [][][]byte{
		{clientFrameBytes(true, 0, ws.OpText, []byte("κόσμε")), clientFrameBytes(true, 0, ws.OpPing, []byte("p"))},
		{clientFrameBytes(false, 0, ws.OpText, []byte("κό")[:3]), clientFrameBytes(true, 0, ws.OpPing, nil), clientFrameBytes(true, 0, ws.OpContinuation, []byte("κό")[3:])},
		{clientFrameBytes(false, 0, ws.OpBinary, []byte{1}), clientFrameBytes(false, 0, ws.OpContinuation, []byte{2}), clientFrameBytes(true, 0, ws.OpContinuation, nil)},
		{clientFrameBytes(true, 0, ws.OpContinuation, []byte("x"))},
		{clientFrameBytes(true, 0, ws.OpText, []byte{0xed, 0xa0, 0x80})},
		{clientFrameBytes(true, 0, ws.OpClose, closeBody(1000, "ok"))},
		{clientFrameBytes(true, 0, ws.OpClose, closeBody(1005, ""))},
		{clientFrameBytes(true, 0, ws.OpClose, []byte{3})},
		{clientFrameBytes(true, 4, ws.OpText, nil)},
		{clientFrameBytes(true, 0, ws.OpText, make([]byte, 300))},
	}
	for _, s := range seeds {
		f.Add(bytes.Join(s, nil))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var msg []byte
		text := false
		check := func(fr clientFrame, v uint16) {
			switch {
			case fr.op == ws.OpClose && fr.size > 0 && len(fr.payload) >= 2:
				if (v == CloseInvalidData) != (validCloseCode(fr.code) && !utf8.Valid(fr.payload[2:])) {
					t.Fatalf("close %d %q: verdict %d", fr.code, fr.payload[2:], v)
				}
			case fr.op == ws.OpText && v != CloseProtocolError || fr.op == ws.OpContinuation && text && v != CloseProtocolError:
				if fr.op == ws.OpText {
					msg = msg[:0]
				}
				msg = append(msg, fr.payload...)
				bad := !validUTF8Prefix(msg) || fr.fin && !utf8.Valid(msg)
				if (v == CloseInvalidData) != bad {
					t.Fatalf("text %q (fin %v): verdict %d", msg, fr.fin, v)
				}
				text = !fr.fin
			case fr.op == ws.OpBinary && v == 0:
				text = false
			}
		}
		feedFrames(in, []int{len(in)}, check)
		sameWhenSplit(t, len(in), 256, 4, 32, func(cuts []int) string { return feedFrames(in, cuts, nil).String() })
	})
}

// TestReadClientFrameAllocs: reading and checking client frames (a text
// message in fragments, UTF-8 included, a ping, a close) allocates
// nothing.
func TestReadClientFrameAllocs(t *testing.T) {
	stream := bytes.Join([][]byte{
		clientFrameBytes(false, 0, ws.OpText, []byte("κόσμε, a text message of some length")[:3]),
		clientFrameBytes(true, 0, ws.OpPing, []byte("p")),
		clientFrameBytes(true, 0, ws.OpContinuation, []byte("κόσμε, a text message of some length")[3:]),
		clientFrameBytes(true, 0, ws.OpClose, closeBody(1000, "bye")),
	}, nil)
	buf := make([]byte, len(stream))
	allocs := testing.AllocsPerRun(100, func() {
		copy(buf, stream)
		var st wsMsgState
		for b := buf; len(b) > 0; {
			f, v := readClientFrame(b, &st, 1000)
			if v != 0 {
				t.Fatalf("verdict %d", v)
			}
			b = b[f.size:]
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}
