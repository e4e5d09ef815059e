package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// fanPayload is message seq sent at t (UnixNano): "seq.t." padded with 'x'
// to size bytes (longer when size is too small to hold both numbers).
func fanPayload(seq int, t int64, size int) []byte {
	b := strconv.AppendInt(nil, int64(seq), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, t, 10)
	b = append(b, '.')
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

// parseFanPayload returns the sequence number and send time of a payload.
// It allocates nothing: the clients share the CPUs with the server.
func parseFanPayload(p []byte) (seq int, t int64, ok bool) {
	num := func(b []byte) (int64, []byte, bool) {
		var v int64
		i := 0
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
			d := int64(b[i] - '0')
			if v > (1<<63-1-d)/10 {
				return 0, nil, false // would overflow
			}
			v = v*10 + d
		}
		if i == 0 || i == len(b) || b[i] != '.' {
			return 0, nil, false
		}
		return v, b[i+1:], true
	}
	n, rest, ok1 := num(p)
	if !ok1 {
		return 0, 0, false
	}
	ts, _, ok2 := num(rest)
	if !ok2 {
		return 0, 0, false
	}
	return int(n), ts, true
}

// encodeCounts writes the non-zero entries of counts as "i:c,i:c,…", or
// "-" when there are none.
func encodeCounts(b *strings.Builder, counts []uint64) {
	first := true
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(b, "%d:%d", i, c)
	}
	if first {
		b.WriteByte('-')
	}
}

// decodeCounts adds the entries of an encodeCounts string to counts and
// returns their sum; an index outside counts is an error.
func decodeCounts(s string, counts []uint64) (uint64, error) {
	var total uint64
	if s == "-" {
		return 0, nil
	}
	for _, p := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(p, ":")
		i, err1 := strconv.Atoi(a)
		c, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= len(counts) {
			return 0, fmt.Errorf("bad count %q", p)
		}
		counts[i] += c
		total += c
	}
	return total, nil
}

// encodeHist serialises a histogram as one line: "n sum min max i:c,i:c,…".
func encodeHist(h *Histogram) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %g %d %d ", h.n, h.sum, h.min, h.max)
	encodeCounts(&b, h.counts[:])
	return b.String()
}

// decodeHist is the inverse of encodeHist.
func decodeHist(s string) (*Histogram, error) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("histogram: %d fields", len(f))
	}
	h := &Histogram{}
	var err error
	if h.n, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return nil, err
	}
	if h.sum, err = strconv.ParseFloat(f[1], 64); err != nil {
		return nil, err
	}
	if h.min, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return nil, err
	}
	if h.max, err = strconv.ParseInt(f[3], 10, 64); err != nil {
		return nil, err
	}
	total, err := decodeCounts(f[4], h.counts[:])
	if err != nil {
		return nil, fmt.Errorf("histogram: %v", err)
	}
	if total != h.n {
		return nil, fmt.Errorf("histogram: buckets hold %d of %d samples", total, h.n)
	}
	return h, nil
}

// fanReport is the end-of-run line of a fan-out client process.
type fanReport struct {
	Got, Dup, Missing, Bad, Closed int64
	Order                          int64    // out-of-order deliveries
	Opened                         int64    // subscribers ever opened
	ListenerMin, ListenerMax       int64    // distinct messages per opened subscriber
	First, Last                    int64    // UnixNano of the first and last delivery
	MissBySeq                      []uint64 // per message: opened subscribers that never got it
	Hist                           *Histogram
}

// parseFanLine parses the "fan k=v …" line of fanState.report; unknown
// keys are skipped.
func parseFanLine(line string) (fanReport, bool) {
	rest, ok := strings.CutPrefix(line, "fan ")
	if !ok {
		return fanReport{}, false
	}
	var r fanReport
	fields := map[string]*int64{"got": &r.Got, "dup": &r.Dup, "missing": &r.Missing, "bad": &r.Bad,
		"closed": &r.Closed, "order": &r.Order, "opened": &r.Opened, "lmin": &r.ListenerMin,
		"lmax": &r.ListenerMax, "first": &r.First, "last": &r.Last}
	for _, fld := range strings.Fields(rest) {
		k, v, _ := strings.Cut(fld, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return r, false
		}
		if p := fields[k]; p != nil {
			*p = n
		}
	}
	return r, true
}
