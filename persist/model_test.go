package persist

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// queueModel is the obvious, slow definition of one channel's behaviour
// (EZ-W-06/07/09, EZ-R-02/03, X-01) with no age retention.
type queueModel struct {
	maxQueue int
	last     uint64
	queue    []Message
	ticks    map[string]uint64 // every tick ever appended → its newest seq
}

func (m *queueModel) write(w EZWrite) string {
	if w.Flush {
		m.queue = nil
		return "flush"
	}
	for _, q := range m.queue {
		if string(q.Tick) == string(w.Tick) {
			if string(q.Body) == string(w.Body) {
				return fmt.Sprint("dup ", q.Seq)
			}
			return "conflict"
		}
	}
	m.last++
	m.queue = append(m.queue, Message{Seq: m.last, Tick: w.Tick, Body: w.Body})
	if len(m.queue) > m.maxQueue {
		m.queue = slices.Clone(m.queue[len(m.queue)-m.maxQueue:])
	}
	m.ticks[string(w.Tick)] = m.last
	return fmt.Sprint("seq ", m.last)
}

func (m *queueModel) read(tick string, limit int) string {
	var after uint64
	known := false
	if seq, ok := m.ticks[tick]; ok {
		known, after = true, seq
	}
	var out []Message
	for _, q := range m.queue {
		if q.Seq > after {
			out = append(out, q)
		}
	}
	res := ReadResult{Cursor: m.last}
	if len(out) > limit {
		out, res.More = out[:limit], true
	}
	res.Messages = out
	if len(out) > 0 {
		res.Cursor = out[len(out)-1].Seq
		res.Gap = known && out[0].Seq > after+1
	} else {
		res.Gap = known && after < m.last
	}
	return ticks(res)
}

func describe(r EZWriteResult, w EZWrite) string {
	switch {
	case errors.Is(r.Err, ErrTickConflict):
		return "conflict"
	case r.Err != nil:
		return r.Err.Error()
	case w.Flush:
		return "flush"
	case r.Duplicate:
		return fmt.Sprint("dup ", r.Msg.Seq)
	}
	return fmt.Sprint("seq ", r.Msg.Seq)
}

// TestAgainstModel runs random writes (some sharing a batch), flushes,
// reopens and reads, and compares every answer with queueModel.
func TestAgainstModel(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			opts := testOptions(t, "")
			opts.EZMaxQueue = 1 + rng.IntN(6)
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			m := &queueModel{maxQueue: opts.EZMaxQueue, ticks: map[string]uint64{}}
			randWrite := func() EZWrite {
				if rng.IntN(15) == 0 {
					return EZWrite{QName: "u-ch", Flush: true}
				}
				return msg("u-ch", fmt.Sprint("t", rng.IntN(10)), fmt.Sprint("b", rng.IntN(2)))
			}
			for step := range 300 {
				switch op := rng.IntN(10); {
				case op < 5:
					w := randWrite()
					if got, want := describe(write(t, s, w), w), m.write(w); got != want {
						t.Fatalf("step %d: write %+v = %s, model %s", step, w, got, want)
					}
				case op < 7:
					ws := make([]EZWrite, 2+rng.IntN(12))
					for i := range ws {
						ws[i] = randWrite()
					}
					release := holdCommitter(t, s)
					res := make([]EZWriteResult, len(ws))
					var wg sync.WaitGroup
					for i, w := range ws {
						wg.Add(1)
						s.EZWrite(w, func(r EZWriteResult) { res[i] = r; wg.Done() })
					}
					release()
					wg.Wait()
					for i, w := range ws {
						if got, want := describe(res[i], w), m.write(w); got != want {
							t.Fatalf("step %d: batched write %d %+v = %s, model %s", step, i, w, got, want)
						}
					}
				case op < 9:
					tick := fmt.Sprint("t", rng.IntN(12)) // t10, t11 never written
					limit := 1 + rng.IntN(8)
					if got, want := ticks(mustRead(t, s, "u-ch", []byte(tick), limit)), m.read(tick, limit); got != want {
						t.Fatalf("step %d: read %s limit %d = %s, model %s", step, tick, limit, got, want)
					}
				default:
					// Half the time, compact first: Pebble then meets every
					// single delete of count retention with its write
					// (TestRetentionSingleDeletesVanishAtFlush).
					if rng.IntN(2) == 0 {
						compactAll(t, s)
					}
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if s, err = Open(opts); err != nil {
						t.Fatal(err)
					}
				}
			}
			if n := s.misuse.Load(); n != 0 {
				t.Fatalf("Pebble reported %d possible API misuses", n)
			}
		})
	}
}
