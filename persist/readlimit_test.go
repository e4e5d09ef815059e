package persist

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

// TestEZReadByteLimit: a read bounded in bytes returns at most that many
// bytes of ticks and bodies, or its first message alone when that one is
// larger; More is set exactly when the next queued message did not fit;
// a reader that goes on from the cursor, or from the last tick, gets
// every message once, in order (C-08: the store reads no more than an
// answer can carry).
func TestEZReadByteLimit(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	const n = 30
	size := make(map[uint64]int) // seq -> tick+body bytes
	var all []string
	for i := 1; i <= n; i++ {
		tick := fmt.Sprint("t", i)
		body := strings.Repeat("b", (i*37)%200) // 0 to 199 bytes
		size[mustAppend(t, s, "u-ch", tick, body)] = len(tick) + len(body)
		all = append(all, tick)
	}
	for _, lim := range []ReadLimit{
		{Bytes: 1}, {Bytes: 100}, {Bytes: 250}, {Bytes: 1000}, {Bytes: 1 << 20},
		{Messages: 3, Bytes: 400}, {Messages: 7},
	} {
		for _, byTick := range []bool{false, true} {
			t.Run(fmt.Sprintf("%+v/tick=%v", lim, byTick), func(t *testing.T) {
				var got []string
				var cursor uint64
				var tick []byte
				for reads := 0; ; reads++ {
					if reads > n+1 {
						t.Fatalf("no end after %d reads", reads)
					}
					var r ReadResult
					var err error
					if byTick {
						r, err = s.EZRead("u-ch", tick, lim)
					} else {
						r, err = s.EZReadAfter("u-ch", cursor, lim)
					}
					if err != nil {
						t.Fatal(err)
					}
					bytes := 0
					for _, m := range r.Messages {
						bytes += len(m.Tick) + len(m.Body)
						got = append(got, string(m.Tick))
					}
					if len(r.Messages) > 1 && lim.Bytes > 0 && bytes > lim.Bytes {
						t.Fatalf("%d messages of %d bytes, limit %d", len(r.Messages), bytes, lim.Bytes)
					}
					if lim.Messages > 0 && len(r.Messages) > lim.Messages {
						t.Fatalf("%d messages, limit %d", len(r.Messages), lim.Messages)
					}
					next, queued := size[r.Cursor+1]
					fits := lim.Bytes <= 0 || bytes+next <= lim.Bytes
					full := lim.Messages > 0 && len(r.Messages) == lim.Messages
					if want := queued && (full || !fits); r.More != want {
						t.Fatalf("More %v after %d messages of %d bytes (next %d bytes, queued %v)", r.More, len(r.Messages), bytes, next, queued)
					}
					if len(r.Messages) == 0 {
						if queued {
							t.Fatalf("empty read before seq %d", r.Cursor+1)
						}
						break
					}
					cursor, tick = r.Cursor, r.Messages[len(r.Messages)-1].Tick
				}
				if strings.Join(got, ",") != strings.Join(all, ",") {
					t.Fatalf("read %v", got)
				}
			})
		}
	}
}

// TestReadByteLimitAllocates: a read bounded in bytes allocates about
// what it returns, not what the message limit would have allowed.
func TestReadByteLimitAllocates(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool is randomised under -race")
	}
	s := openTest(t, testOptions(t, ""))
	body := strings.Repeat("b", 4000)
	for i := range 200 {
		mustAppend(t, s, "u-ch", fmt.Sprint("t", i), body)
		mustPush(t, s, cfAuto("u/a", body))
	}
	lim := ReadLimit{Messages: 1000, Bytes: 16 << 10}
	for name, read := range map[string]func() int{
		"EZReadAfter": func() int {
			r, err := s.EZReadAfter("u-ch", 0, lim)
			if err != nil {
				t.Fatal(err)
			}
			return len(r.Messages)
		},
		"CFRead": func() int {
			r, err := s.CFRead([]byte("u/a"), 0, 0, lim)
			if err != nil {
				t.Fatal(err)
			}
			return len(r.Pushes)
		},
	} {
		var got int
		bytes := allocatedBytes(func() { got = read() })
		if got != 4 {
			t.Fatalf("%s: %d messages of 4 KB within 16 KiB, want 4", name, got)
		}
		if bytes > 24<<10 {
			t.Errorf("%s: %d bytes allocated for 16 KiB of messages", name, bytes)
		}
	}
}

// allocatedBytes is the least the heap grew by over a few runs of fn
// (other goroutines of the store may allocate meanwhile; the least of
// several runs is fn's own).
func allocatedBytes(fn func()) uint64 {
	var least uint64 = math.MaxUint64
	var before, after runtime.MemStats
	for range 5 {
		runtime.ReadMemStats(&before)
		fn()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// TestEZReadIntoBuf: a read into a ReadBuf answers exactly what the same
// read without one answers, message by message, also when the buffer
// grows in the middle of a read (every message then points at the final
// array), and a reader that reuses its buffer stops allocating for the
// result once the buffer fits its reads (C-08: a flood of reads leaves no
// garbage behind).
func TestEZReadIntoBuf(t *testing.T) {
	s := openTest(t, testOptions(t, ""))
	for i := 1; i <= 40; i++ {
		mustAppend(t, s, "u-ch", fmt.Sprint("t", i), strings.Repeat(string(rune('a'+i%26)), i*50))
	}
	var buf ReadBuf
	for _, after := range []uint64{0, 5, 39, 40} {
		for _, lim := range []ReadLimit{{}, {Messages: 3}, {Bytes: 700}} {
			want, err := s.EZReadAfter("u-ch", after, lim)
			if err != nil {
				t.Fatal(err)
			}
			lim.Buf = &buf
			got, err := s.EZReadAfter("u-ch", after, lim)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Messages) != len(want.Messages) || got.Cursor != want.Cursor || got.More != want.More || got.Gap != want.Gap {
				t.Fatalf("after %d %+v: into a buffer %d messages cursor %d more %v, without %d cursor %d more %v",
					after, lim, len(got.Messages), got.Cursor, got.More, len(want.Messages), want.Cursor, want.More)
			}
			for i, m := range got.Messages {
				w := want.Messages[i]
				if m.Seq != w.Seq || m.Time != w.Time || string(m.Tick) != string(w.Tick) || string(m.Body) != string(w.Body) {
					t.Fatalf("after %d %+v: message %d is %d %q (%d bytes), want %d %q (%d bytes)",
						after, lim, i, m.Seq, m.Tick, len(m.Body), w.Seq, w.Tick, len(w.Body))
				}
			}
		}
	}
	if raceEnabled {
		t.Log("allocation counts are compared without -race (sync.Pool is randomised under it)")
		return
	}
	tick := []byte("t3")
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := s.EZRead("u-ch", tick, ReadLimit{Buf: &buf}); err != nil {
			t.Fatal(err)
		}
	})
	fresh := testing.AllocsPerRun(50, func() {
		if _, err := s.EZRead("u-ch", tick, ReadLimit{}); err != nil {
			t.Fatal(err)
		}
	})
	// The iterator's own allocations remain (Pebble pools most of them);
	// the result's slice and byte chunks are gone.
	if allocs >= fresh {
		t.Fatalf("a read into a reused buffer allocates %.1f times, a fresh one %.1f: the buffer saves nothing", allocs, fresh)
	}
	t.Logf("allocations per read: %.1f into a reused buffer, %.1f fresh", allocs, fresh)
}
