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
	for _, mode := range []struct {
		name string
		sync SyncMode
	}{{"sync=always", SyncAlways}, {"sync=none", SyncNone}} {
		b.Run(mode.name, func(b *testing.B) {
			opts := testOptions(b, "")
			opts.Sync = mode.sync
			s := openTest(b, opts)
			body := make([]byte, 128)
			var writer atomic.Uint64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := writer.Add(1)
				qname := fmt.Sprintf("bench-ch%d", id%64)
				ch := make(chan EZWriteResult, 1)
				done := func(r EZWriteResult) { ch <- r }
				tick := make([]byte, 0, 32)
				for i := uint64(0); pb.Next(); i++ {
					tick = strconv.AppendUint(append(tick[:0], byte('a'+id%26)), id<<32|i, 36)
					s.EZWrite(EZWrite{QName: qname, Tick: tick, Body: body}, done)
					if r := <-ch; r.Err != nil {
						b.Error(r.Err)
						return
					}
				}
			})
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			if st.Batches > 0 {
				b.ReportMetric(float64(st.BatchSizeSum)/float64(st.Batches), "writes/batch")
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
			r, err := s.EZRead("bench-ch", tick, 0)
			if err != nil || len(r.Messages) != 10 {
				b.Fatal(err, len(r.Messages))
			}
		}
	})
}
