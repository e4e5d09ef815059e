package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// stormServer is a fake Cometify server for one identifier that resumes a
// listener by id (CF-L-05): retained pushes above the id, then live; the
// first frame is the resume point. No per-IP cap.
func stormServer(t *testing.T) string {
	var mu sync.Mutex
	var pushes [][]byte // frame of push id i+1
	subs := map[net.Conn]bool{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{key}/listen", func(w http.ResponseWriter, r *http.Request) {
		name, last, idForm := strings.Cut(r.URL.Query().Get("identifiers"), ":")
		from, err := strconv.Atoi(last)
		if idForm && err != nil {
			w.WriteHeader(400)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		brw.Flush()
		mu.Lock()
		if !idForm {
			from = len(pushes)
		}
		c.Write(srvFrame(true, 1, []byte(`{"since":"`+name+`:`+strconv.Itoa(from)+`"}`), nil))
		for _, f := range pushes[min(from, len(pushes)):] {
			c.Write(f)
		}
		subs[c] = true
		mu.Unlock()
		go func() {
			io.Copy(io.Discard, c)
			mu.Lock()
			delete(subs, c)
			mu.Unlock()
			c.Close()
		}()
	})
	mux.HandleFunc("POST /{key}/push/{identifier}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := len(pushes) + 1
		f := srvFrame(true, 1, []byte(`{"identifier":"`+strings.ToLower(r.FormValue("identifier"))+`","id":`+strconv.Itoa(id)+
			`,"data":"`+r.FormValue("text")+`"}`), nil)
		pushes = append(pushes, f)
		for c := range subs {
			c.Write(f)
		}
		w.Write([]byte(`{"code":"ok","push_id":` + strconv.Itoa(id) + `}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		mu.Lock()
		for c := range subs {
			c.Close()
		}
		mu.Unlock()
		srv.Close()
	})
	return srv.URL
}

func TestStormEndToEnd(t *testing.T) {
	c := stormDefaults()
	c.Target, c.Key, c.Secret = stormServer(t), "k", "s"
	c.Subs, c.Msgs, c.Rate, c.PerProcess, c.DialConc = 40, 40, 50, 25, 8
	c.StormAt, c.StormWait, c.Drain, c.MaxLife = 300*time.Millisecond, 20*time.Second, 10*time.Second, time.Minute
	var log bytes.Buffer
	res, err := runFanout(context.Background(), c, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	s := res.Storm
	if s == nil || s.Dropped != 40 || s.Reconnected != 40 || s.GaveUp != 0 || s.ReconnectMs < 0 || s.CaughtMs < s.ReconnectMs ||
		s.SentBefore < 1 || s.CatchMsgs < s.SentBefore {
		t.Fatalf("storm %+v\n%s", s, log.String())
	}
	if res.Open != 40 || res.Deliveries != 40*40 || res.Missing != 0 || res.Duplicates != 0 || res.OutOfOrder != 0 || res.Bad != 0 || !stormOK(&res) {
		t.Fatalf("%+v\n%s", res, log.String())
	}
	var out bytes.Buffer
	printFanout(&out, &c, &res)
	if !strings.Contains(out.String(), "40 subscribers reset, 40 reconnected") {
		t.Fatal(out.String())
	}
}

func TestSinceID(t *testing.T) {
	for in, want := range map[string]int64{`{"since":"a0:17"}`: 17, `{"since":"a0:0"}`: 0, `{"since":"a0:1,b:2"}`: -1,
		`{"since":"a0"}`: -1, `{"gap":true}`: -1, `{"since":"a0:x"}`: -1} {
		v, ok := sinceID([]byte(in))
		if (want < 0 && ok) || (want >= 0 && (!ok || v != want)) {
			t.Errorf("%s: %d %v", in, v, ok)
		}
	}
}

func TestRunStormCase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no run: only the case's dispatch and table
	r := &runner{c: runConfig{Runs: 1, HalleyCmd: "halley serve", Size: 100}, log: io.Discard, peers: map[string]peerRuns{}}
	cr, err := r.runCase(ctx, "storm-cf")
	if err != nil || cr == nil || len(cr.metrics) == 0 || cr.metrics[0].key != "reconnect_ms" || cr.Nchan != nil {
		t.Fatalf("%v %+v", err, cr)
	}
	if cmd := r.harnessCmd("storm-cf"); !strings.HasPrefix(cmd, "halley bench storm --subs 18000 --msgs 500 --rate 20 --at 10s") {
		t.Fatal(cmd)
	}
	if c, err := parseRunArgs([]string{"--cases", "storm-cf", "--halley-cmd", "x --listen 127.0.0.1:1"}, io.Discard); err != nil || c.Cases[0] != "storm-cf" {
		t.Fatal(c.Cases, err)
	}
}
