package persist

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkEZWrite measures acknowledged writes with many concurrent
// writers (each waits for its completion, as a request does), spread over
// 64 channels, in both sync modes.
func BenchmarkEZWrite(b *testing.B) {
	body := make([]byte, 128)
	benchWriters(b, "writes", func(s *Store, id uint64) func() error {
		qname := fmt.Sprintf("bench-ch%d", id%64)
		ch := make(chan EZWriteResult, 1)
		done := func(r EZWriteResult) { ch <- r }
		tick := make([]byte, 0, 32)
		var i uint64
		return func() error {
			i++
			tick = strconv.AppendUint(append(tick[:0], byte('a'+id%26)), id<<32|i, 36)
			s.EZWrite(EZWrite{QName: qname, Tick: tick, Body: body}, done)
			return (<-ch).Err
		}
	})
}

// BenchmarkCFPush is BenchmarkEZWrite for Cometify pushes with assigned
// ids over 64 topics.
func BenchmarkCFPush(b *testing.B) {
	text := make([]byte, 128)
	benchWriters(b, "pushes", func(s *Store, id uint64) func() error {
		topic := fmt.Sprintf("bench/topic%d", id%64)
		ch := make(chan CFPushResult, 1)
		done := cfDoneFunc(func(r CFPushResult) { ch <- r })
		return func() error {
			s.CFPushTo(CFPush{Topic: topic, Text: text}, done)
			return (<-ch).Err
		}
	})
}

// benchWriters runs 32 writers per CPU, in both sync modes, each calling
// the function newWriter gave it (with a writer number from 1) once per
// iteration; that function returns when its write is acknowledged.
func benchWriters(b *testing.B, unit string, newWriter func(s *Store, id uint64) func() error) {
	for _, mode := range []struct {
		name string
		sync SyncMode
	}{{"sync=always", SyncAlways}, {"sync=none", SyncNone}} {
		b.Run(mode.name, func(b *testing.B) {
			opts := testOptions(b, "")
			opts.Sync = mode.sync
			s := openTest(b, opts)
			var writer atomic.Uint64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				writeOne := newWriter(s, writer.Add(1))
				for pb.Next() {
					if err := writeOne(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit+"/s")
			if st.Batches > 0 {
				b.ReportMetric(float64(st.BatchSizeSum)/float64(st.Batches), unit+"/batch")
			}
		})
	}
}

// BenchmarkEZRead reads the 10 newest messages of a full channel after a
// tick, as a resuming reader does.
func BenchmarkEZRead(b *testing.B) {
	s := openTest(b, testOptions(b, ""))
	for i := range 1000 {
		mustAppend(b, s, "bench-ch", fmt.Sprint("t", i), "some message body")
	}
	tick := []byte("t989")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := s.EZRead("bench-ch", tick, ReadLimit{})
			if err != nil || len(r.Messages) != 10 {
				b.Fatal(err, len(r.Messages))
			}
		}
	})
}

// BenchmarkCFRead reads the 10 newest pushes of a topic holding 1000, as
// a resuming listener does.
func BenchmarkCFRead(b *testing.B) {
	s := openTest(b, testOptions(b, ""))
	for range 1000 {
		mustPush(b, s, cfAuto("bench/topic", "some push text"))
	}
	topic := []byte("bench/topic")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := s.CFRead(topic, 990, 0, ReadLimit{})
			if err != nil || len(r.Pushes) != 10 {
				b.Fatal(err, len(r.Pushes))
			}
		}
	})
}
