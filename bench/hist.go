package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a small HDR-like histogram of non-negative int64 values
// (nanoseconds here). Values below 128 are exact; above, each power of two is
// split into 64 buckets, so a reported percentile is within 1/64 (1.6%) of
// the true sample. The zero value is ready to use; it is not safe for
// concurrent use (give each goroutine its own and Merge them).
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits        // 64 buckets per power of two
	histLinear  = 2 * histSub             // values below this are exact
	histBuckets = histLinear + 57*histSub // enough for any int64
)

func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < histLinear {
		return int(u)
	}
	shift := bits.Len64(u) - (histSubBits + 1)
	top := u >> uint(shift) // in [64,127]
	return histLinear + (shift-1)*histSub + int(top-histSub)
}

// histHigh is the largest value that falls in bucket i.
func histHigh(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	j := i - histLinear
	shift := j/histSub + 1
	top := uint64(j%histSub + histSub)
	hi := (top+1)<<uint(shift) - 1
	if hi > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(hi)
}

// Record adds one value.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
}

// RecordDuration adds one duration in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample (exact).
func (h *Histogram) Max() int64 { return h.max }

// Min is the smallest sample (exact).
func (h *Histogram) Min() int64 { return h.min }

// Mean is the average sample.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Percentile returns the value at quantile q (0..1, e.g. 0.99): the smallest
// bucket bound such that at least ceil(q*n) samples are at or below it,
// clamped to the exact min and max. 0 when empty.
func (h *Histogram) Percentile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			v := histHigh(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return v
		}
	}
	return h.max
}

// cdf is the histogram's distribution as points (ms, fraction of the
// samples at or below): one per non-empty bucket, at its upper bound
// (the exact max for the last).
func (h *Histogram) cdf() [][2]float64 {
	if h.n == 0 {
		return nil
	}
	var out [][2]float64
	var cum uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		out = append(out, [2]float64{float64(min(histHigh(i), h.max)) / 1e6, float64(cum) / float64(h.n)})
	}
	return out
}
