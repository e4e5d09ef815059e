package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// floorConfig is one floor measurement (PERF.md P2b): the same WebSocket
// frame written to Socks loopback sockets by one thread, with no server
// logic, Rounds frames per socket, K frames per write(2) for each K of
// Batches. Readers in the same process drain the other ends (their CPU is
// not counted: the writer thread's own getrusage is).
type floorConfig struct {
	Socks   int
	Rounds  int   // frames per socket for each batch size (a multiple of every K)
	Size    int   // payload bytes of the frame
	Batches []int // frames per write
}

// floorResult is the floor at one batch size.
type floorResult struct {
	PerWrite      int     `json:"frames_per_write"`
	Socks         int     `json:"sockets"`
	Frames        int64   `json:"frames"` // delivered: sockets × rounds
	CPUus         float64 `json:"cpu_us_per_frame"`
	SysUs         float64 `json:"sys_us_per_frame"`
	WriteUs       float64 `json:"cpu_us_per_write"`
	DeliveriesSec float64 `json:"deliveries_per_sec"`
}

// floorStats is the arithmetic of one batch size: the writer thread's
// user and system CPU over the frames written, K per write, to socks
// sockets, and the frames per second of wall time.
func floorStats(k, socks int, frames int64, user, sys, wall time.Duration) floorResult {
	r := floorResult{PerWrite: k, Socks: socks, Frames: frames}
	if frames <= 0 {
		return r
	}
	r.CPUus = float64(user+sys) / 1e3 / float64(frames)
	r.SysUs = float64(sys) / 1e3 / float64(frames)
	r.WriteUs = r.CPUus * float64(k)
	if wall > 0 {
		r.DeliveriesSec = float64(frames) / wall.Seconds()
	}
	return r
}

// floorFrame is the server frame every socket gets: a WebSocket text
// frame (unmasked, as a server sends) of size payload bytes, k times.
func floorFrame(size, k int) []byte {
	p := fanPayload(0, time.Now().UnixNano(), size)
	f := wsHeaderFor(len(p))
	f = append(f, p...)
	out := make([]byte, 0, len(f)*k)
	for range k {
		out = append(out, f...)
	}
	return out
}

// wsHeaderFor is the header of an unmasked final text frame of n bytes.
func wsHeaderFor(n int) []byte {
	switch {
	case n < 126:
		return []byte{0x81, byte(n)}
	case n < 1<<16:
		return []byte{0x81, 126, byte(n >> 8), byte(n)}
	}
	h := []byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0, 0}
	for i := range 8 {
		h[9-i] = byte(n >> (8 * i))
	}
	return h
}

func (c *floorConfig) validate() error {
	if c.Socks < 1 || c.Rounds < 1 || c.Size < 0 || len(c.Batches) == 0 {
		return fmt.Errorf("--socks, --rounds must be ≥ 1, --size ≥ 0, --per-write not empty")
	}
	for _, k := range c.Batches {
		if k < 1 || c.Rounds%k != 0 {
			return fmt.Errorf("--rounds %d must be a multiple of every --per-write (%d)", c.Rounds, k)
		}
	}
	return nil
}

// floorDefaults: 9,000 sockets, 32 frames each, 1, 4 and 16 per write.
func floorDefaults() floorConfig {
	return floorConfig{Socks: 9000, Rounds: 32, Size: 100, Batches: []int{1, 4, 16}}
}

// floorMetrics are the rows of the floor case.
var floorMetrics = []metric{
	{"cpu_us_1", "writer CPU per frame, 1 frame per write, µs (the single-frame floor)"},
	{"sys_us_1", "of which system, µs"},
	{"deliveries_per_sec_1", "frames/s, 1 per write"},
	{"cpu_us_4", "writer CPU per frame, 4 frames per write, µs"},
	{"deliveries_per_sec_4", "frames/s, 4 per write"},
	{"cpu_us_16", "writer CPU per frame, 16 frames per write, µs"},
	{"deliveries_per_sec_16", "frames/s, 16 per write"},
}

// floorMetricsOf is one floor run as table values.
func floorMetricsOf(res []floorResult) map[string]float64 {
	m := map[string]float64{}
	for _, r := range res {
		k := strconv.Itoa(r.PerWrite)
		m["cpu_us_"+k], m["sys_us_"+k], m["deliveries_per_sec_"+k] = r.CPUus, r.SysUs, r.DeliveriesSec
	}
	return m
}

// cmdFloor is "bench floor".
func cmdFloor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := floorDefaults()
	fs.IntVar(&c.Socks, "socks", c.Socks, "loopback sockets written to (2 fds each in this process)")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "frames per socket at each --per-write")
	fs.IntVar(&c.Size, "size", c.Size, "payload bytes of the frame")
	batches := fs.String("per-write", "1,4,16", "frames per write(2), each measured in turn")
	jsonOut := fs.Bool("json", false, "print the results as one JSON line")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	var err error
	if c.Batches, err = parseInts(*batches); err != nil {
		fmt.Fprintln(stderr, "bench floor:", err)
		return 2
	}
	res, err := runFloor(context.Background(), c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench floor:", err)
		return 1
	}
	if *jsonOut {
		printJSON(stdout, res)
		return 0
	}
	for _, r := range res {
		fmt.Fprintf(stdout, "floor: %d frames of %d B to %d loopback sockets, %d per write: %.2f µs CPU per frame (%.2f system), %.2f µs per write; %.0f frames/s\n",
			r.Frames, c.Size+2, r.Socks, r.PerWrite, r.CPUus, r.SysUs, r.WriteUs, r.DeliveriesSec)
	}
	return 0
}
