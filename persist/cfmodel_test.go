package persist

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// topicModel is the obvious, slow definition of one Cometify topic
// (CF-P-04/06/08, X-01): it keeps every push ever accepted, and a push
// counts as retained while it is younger than retain. Deleting expired
// pushes (the sweeper) must not be observable.
type topicModel struct {
	retain int64
	last   uint64
	pushes []CFMessage // every accepted push, ascending id
}

func (m *topicModel) push(p CFPush, now int64) string {
	id := p.ID
	if !p.HasID {
		id = m.last + 1
	}
	if id > m.last {
		m.last = id
		m.pushes = append(m.pushes, CFMessage{ID: id, Time: now, Secret: p.Secret, Text: p.Text})
		return fmt.Sprint("id ", id)
	}
	for _, q := range m.pushes {
		if q.ID == id && q.Time >= now-m.retain && string(q.Text) == string(p.Text) {
			return describeCFFull(CFPushResult{Msg: q, Duplicate: true})
		}
	}
	return "conflict"
}

// read returns the retained pushes after after in id order up to the
// first that lim leaves out (the first one always fits).
func (m *topicModel) read(after uint64, notBefore, now int64, lim ReadLimit) string {
	cutoff := max(notBefore, now-m.retain)
	res := CFReadResult{Cursor: after, Last: m.last}
	bytes := 0
	for _, q := range m.pushes {
		switch {
		case q.ID <= after:
		case q.Time < cutoff:
			res.Gap = true
		case res.More,
			lim.Messages > 0 && len(res.Pushes) == lim.Messages,
			lim.Bytes > 0 && len(res.Pushes) > 0 && bytes+len(q.Text) > lim.Bytes:
			res.More = true
		default:
			res.Pushes = append(res.Pushes, q)
			res.Cursor = q.ID
			bytes += len(q.Text)
		}
	}
	return describeCFRead(res)
}

// describeCFFull is describeCF with a duplicate's retained message.
func describeCFFull(r CFPushResult) string {
	if r.Err == nil && r.Duplicate {
		return fmt.Sprintf("dup %d %q secret=%v t=%d", r.Msg.ID, r.Msg.Text, r.Msg.Secret, r.Msg.Time)
	}
	return describeCF(r)
}

// describeCFRead is cfIDs with every push's text, flag and time.
func describeCFRead(r CFReadResult) string {
	var b strings.Builder
	b.WriteString(cfIDs(r))
	for _, p := range r.Pushes {
		fmt.Fprintf(&b, " [%d %q %v %d]", p.ID, p.Text, p.Secret, p.Time)
	}
	return b.String()
}

func TestCFAgainstModel(t *testing.T) {
	topics := []string{"u/a", "u/b"}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			opts, clock := clockedOptions(t)
			opts.CFRetain = time.Duration(1+rng.IntN(10)) * time.Minute
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			var dropped uint64 // by every store instance of this run
			models := map[string]*topicModel{}
			for _, name := range topics {
				models[name] = &topicModel{retain: int64(opts.CFRetain)}
			}
			randPush := func() CFPush {
				topic := topics[rng.IntN(len(topics))]
				// Texts of 1 to 3 bytes, so that byte limits cut reads.
				p := CFPush{Topic: topic, Secret: rng.IntN(2) == 0, Text: []byte(fmt.Sprint(strings.Repeat("x", rng.IntN(3)), rng.IntN(2)))}
				if rng.IntN(3) > 0 {
					// Mostly ids near the last one, so that duplicates,
					// conflicts and skips all happen.
					last := int64(models[topic].last)
					p.ID, p.HasID = uint64(max(0, last-4+rng.Int64N(8))), true
				}
				return p
			}
			for step := range 400 {
				now := clock.Now().UnixNano()
				switch op := rng.IntN(20); {
				case op < 7:
					p := randPush()
					got := describeCFFull(push(t, s, p))
					if want := models[p.Topic].push(p, now); got != want {
						t.Fatalf("step %d: push %s %d/%v %q = %s, model %s", step, p.Topic, p.ID, p.HasID, p.Text, got, want)
					}
				case op < 10:
					ps := make([]CFPush, 2+rng.IntN(10))
					for i := range ps {
						ps[i] = randPush()
					}
					res := make([]CFPushResult, len(ps))
					inOneBatch(t, s, func(wg *sync.WaitGroup) {
						for i, p := range ps {
							wg.Add(1)
							s.CFPushTo(p, cfDoneFunc(func(r CFPushResult) { res[i] = r; wg.Done() }))
							if rng.IntN(3) == 0 {
								wg.Add(1)
								s.EZWrite(msg("u-ch", fmt.Sprint(step, "-", i), "ez"), func(r EZWriteResult) {
									if r.Err != nil {
										t.Error(r.Err)
									}
									wg.Done()
								})
							}
						}
					})
					for i, p := range ps {
						got := describeCFFull(res[i])
						if want := models[p.Topic].push(p, now); got != want {
							t.Fatalf("step %d: batched push %d %s %d/%v %q = %s, model %s", step, i, p.Topic, p.ID, p.HasID, p.Text, got, want)
						}
					}
				case op < 15:
					topic := topics[rng.IntN(len(topics))]
					m := models[topic]
					after := uint64(rng.Int64N(int64(m.last) + 3))
					var notBefore int64
					if rng.IntN(2) == 0 {
						notBefore = now - rng.Int64N(int64(12*time.Minute))
					}
					lim := ReadLimit{Messages: rng.IntN(5)}
					if rng.IntN(2) == 0 {
						lim.Bytes = rng.IntN(8)
					}
					got := describeCFRead(mustCFReadLim(t, s, topic, after, notBefore, lim))
					if want := m.read(after, notBefore, now, lim); got != want {
						t.Fatalf("step %d: read %s after %d notBefore now-%v limit %+v\n got %s\nwant %s",
							step, topic, after, time.Duration(now-notBefore), lim, got, want)
					}
					if last := s.CFLast([]byte(topic)); last != m.last {
						t.Fatalf("step %d: CFLast %d, model %d", step, last, m.last)
					}
				case op < 17:
					clock.Advance(time.Duration(rng.Int64N(int64(4 * time.Minute))))
				case op < 19:
					s.sweep()
				default:
					dropped += s.Stats().CFDropped
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					if s, err = Open(opts); err != nil {
						t.Fatal(err)
					}
				}
			}
			if dropped += s.Stats().CFDropped; dropped == 0 {
				t.Fatal("no sweep dropped a push: the run does not test retention")
			}
		})
	}
}
