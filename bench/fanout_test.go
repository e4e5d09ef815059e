package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFanPayload(t *testing.T) {
	ts := time.Date(2026, 11, 23, 13, 0, 0, 123456789, time.UTC).UnixNano()
	for _, size := range []int{0, 10, 100, 1000} {
		p := fanPayload(42, ts, size)
		if size > 30 && len(p) != size {
			t.Fatalf("size %d: len %d", size, len(p))
		}
		seq, got, ok := parseFanPayload(p)
		if !ok || seq != 42 || got != ts {
			t.Fatalf("size %d: %q → %d %d %v", size, p, seq, got, ok)
		}
	}
	for _, bad := range []string{"", "x", "1.", "1.2", "a.2.", "1.b.", "-1.2."} {
		if _, _, ok := parseFanPayload([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestFanMessage(t *testing.T) {
	p, ign := fanMessage("halley", []byte(`["00000000000000000001","5.77.xx"]`))
	if ign || string(p) != "5.77.xx" {
		t.Fatalf("%q %v", p, ign)
	}
	if _, ign := fanMessage("halley", []byte(`{"gap":true}`)); !ign {
		t.Fatal("gap not ignored")
	}
	if p, ign := fanMessage("halley", []byte(`[1]`)); ign || p != nil {
		t.Fatal("bad array not reported as bad")
	}
	if p, ign := fanMessage("nchan", []byte("5.77.")); ign || string(p) != "5.77." {
		t.Fatal("nchan body")
	}
}

func TestFanSubAccounting(t *testing.T) {
	s := newFanSub(10)
	for _, seq := range []int{0, 1, 1, 3, 9, 9, 9} {
		s.mark(seq)
	}
	if s.mark(10) || s.mark(-1) {
		t.Fatal("out of range accepted")
	}
	if s.got != 4 || s.dup != 3 || s.missing(10) != 6 {
		t.Fatalf("got %d dup %d missing %d", s.got, s.dup, s.missing(10))
	}
}

func TestHistEncodeDecode(t *testing.T) {
	var a, b Histogram
	for i := int64(0); i < 1000; i++ {
		a.Record(i * 12345)
		b.Record(i * 7)
	}
	var all Histogram
	all.Merge(&a)
	all.Merge(&b)
	var merged Histogram
	for _, h := range []*Histogram{&a, &b, {}} {
		d, err := decodeHist(encodeHist(h))
		if err != nil {
			t.Fatal(err)
		}
		if *d != *h {
			t.Fatal("round trip differs")
		}
		merged.Merge(d)
	}
	if merged != all {
		t.Fatal("merged decoded histograms differ")
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		if merged.Percentile(q) != all.Percentile(q) {
			t.Fatal(q)
		}
	}
	for _, bad := range []string{"", "1 1 1 1", "2 0 0 0 1:1", "1 0 0 0 99999:1", "1 0 0 0 x"} {
		if _, err := decodeHist(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
	r, ok := parseFanLine("fan got=5 dup=1 missing=2 bad=0 closed=0 first=10 last=20")
	if !ok || r.Got != 5 || r.Dup != 1 || r.Missing != 2 || r.First != 10 || r.Last != 20 {
		t.Fatalf("%+v %v", r, ok)
	}
}

// fanServer is a tiny Halley look-alike: WebSocket subscribers on
// /read/ws, POST /write broadcasts ["tick","msg"] to the subscribers of the
// qname. To exercise the accounting, the first subscriber gets every
// message twice (and a {"gap":true} first), the second never gets seq 5.
func fanServer(t *testing.T) string {
	mux := http.NewServeMux()
	closeAll := fanHandlers(mux, "k")
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		closeAll()
		srv.Close()
	})
	return srv.URL
}

// fanHandlers registers /read/ws and /write (api_key key) on mux; the
// returned func closes the subscribers.
func fanHandlers(mux *http.ServeMux, key string) func() {
	var mu sync.Mutex
	subs := map[string][]net.Conn{}
	frame := func(p []byte) []byte {
		b := []byte{0x81}
		if len(p) < 126 {
			b = append(b, byte(len(p)))
		} else {
			b = append(b, 126, 0, 0)
			binary.BigEndian.PutUint16(b[2:], uint16(len(p)))
		}
		return append(b, p...)
	}
	mux.HandleFunc("/read/ws", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		brw.Flush()
		q := r.URL.Query().Get("qname")
		mu.Lock()
		if len(subs[q]) == 0 {
			c.Write(frame([]byte(`{"gap":true}`)))
		}
		subs[q] = append(subs[q], c)
		mu.Unlock()
		go io.Copy(io.Discard, c)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("api_key") != key {
			w.WriteHeader(401)
			return
		}
		msg := r.FormValue("msg")
		f := frame([]byte(`["00000000000000000001","` + msg + `"]`))
		mu.Lock()
		for i, c := range subs[r.FormValue("qname")] {
			if i == 1 && strings.HasPrefix(msg, "5.") {
				continue
			}
			c.Write(f)
			if i == 0 {
				c.Write(f)
			}
		}
		mu.Unlock()
		io.WriteString(w, `{"code":"ok","tick":"00000000000000000001"}`)
	})
	return func() {
		mu.Lock()
		for _, l := range subs {
			for _, c := range l {
				c.Close()
			}
		}
		mu.Unlock()
	}
}

func TestFanoutEndToEnd(t *testing.T) {
	url := fanServer(t)
	c := fanoutConfig{Target: url, Kind: "halley", Subs: 20, Msgs: 10, Rate: 100, Size: 60, Key: "k", User: "u",
		PerProcess: 12, PerIP: 20, DialConc: 8, OpenTimeout: 20 * time.Second, Grace: time.Minute,
		Drain: 10 * time.Second, MaxLife: time.Minute, PID: 0}
	var log bytes.Buffer
	res, err := runFanout(context.Background(), c, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if res.Open != 20 || res.Published != 10 || res.PubErrors != 0 || res.Expected != 200 {
		t.Fatalf("%+v\n%s", res, log.String())
	}
	if res.Deliveries != 199 || res.Missing != 1 || res.Duplicates != 10 || res.Bad != 0 || res.RateKept {
		t.Fatalf("%+v\n%s", res, log.String())
	}
	if res.DeliveriesSec <= 0 || res.MaxMs < res.P50ms || res.PubRate <= 0 {
		t.Fatalf("%+v", res)
	}
	var out bytes.Buffer
	printFanout(&out, &c, &res)
	if !strings.Contains(out.String(), "199 deliveries") {
		t.Fatal(out.String())
	}
}

func TestWSHoldFuncJoinsFragments(t *testing.T) {
	srv, cli := net.Pipe()
	defer srv.Close()
	var st clientStats
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- wsHoldFunc(cli, bufio.NewReaderSize(cli, 16), &st, func(b []byte) { got = append(got, string(b)) })
	}()
	for _, f := range [][]byte{{0x81, 2, 'h', 'i'}, {0x01, 1, 'a'}, {0x80, 0x81, 1, 2, 3, 4, 'b' ^ 1}} {
		srv.Write(f)
	}
	srv.Write([]byte{0x88, 0})
	io.ReadFull(srv, make([]byte, 6))
	if err := <-done; err != io.EOF {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "hi" || got[1] != "ab" {
		t.Fatalf("%q", got)
	}
}
