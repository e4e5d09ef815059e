package bench

import (
	"context"
	"io"
	"runtime"
	"testing"
	"time"
)

func TestFloorStats(t *testing.T) {
	// 1,000 sockets × 32 frames, 4 per write: 8,000 writes, 32,000 frames,
	// 16 ms of user and 48 ms of system time in 0.5 s.
	r := floorStats(4, 1000, 32000, 16*time.Millisecond, 48*time.Millisecond, 500*time.Millisecond)
	if r.CPUus != 2 || r.SysUs != 1.5 || r.WriteUs != 8 || r.DeliveriesSec != 64000 || r.Frames != 32000 || r.PerWrite != 4 {
		t.Fatalf("%+v", r)
	}
	if z := floorStats(1, 10, 0, time.Second, 0, time.Second); z.CPUus != 0 || z.DeliveriesSec != 0 {
		t.Fatalf("no frames: %+v", z)
	}
	m := floorMetricsOf([]floorResult{r, floorStats(1, 1000, 32000, 0, 64*time.Millisecond, time.Second)})
	if m["cpu_us_4"] != 2 || m["cpu_us_1"] != 2 || m["sys_us_1"] != 2 || m["deliveries_per_sec_1"] != 32000 {
		t.Fatalf("%v", m)
	}
	// The frame is k server frames, each read back as the payload.
	for _, size := range []int{30, 100, 300, 70000} {
		var rec recSink
		var ws wsStream
		if err := ws.feed(floorFrame(size, 3), &rec); err != nil || len(rec.got) != 3 {
			t.Fatalf("size %d: %v %d", size, err, len(rec.got))
		}
		// recSink keeps "<op>:<payload>".
		if p := rec.got[2][2:]; rec.got[0][:2] != "1:" || len(p) != size {
			t.Fatalf("size %d: %q", size, rec.got[0][:20])
		} else if _, _, ok := parseFanPayload([]byte(p)); !ok {
			t.Fatalf("size %d: payload %q", size, p[:20])
		}
	}
	for _, bad := range []floorConfig{{Socks: 0, Rounds: 4, Batches: []int{1}}, {Socks: 1, Rounds: 6, Batches: []int{4}}, {Socks: 1, Rounds: 4}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if v, err := parseInts("1, 4,16"); err != nil || len(v) != 3 || v[2] != 16 {
		t.Errorf("%v %v", v, err)
	}
	if _, err := parseInts("1,0"); err == nil {
		t.Error("0 accepted")
	}
}

func TestFloorRun(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	res, err := runFloor(context.Background(), floorConfig{Socks: 30, Rounds: 8, Size: 100, Batches: []int{1, 4}}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].PerWrite != 1 || res[1].PerWrite != 4 || res[0].Frames != 240 || res[1].Frames != 240 || res[0].Socks != 30 {
		t.Fatalf("%+v", res)
	}
	if res[0].DeliveriesSec <= 0 || res[0].CPUus < 0 {
		t.Fatalf("%+v", res)
	}
}
