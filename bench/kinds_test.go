package bench

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every kind's publish request is a well-formed HTTP/1.1 POST that a Go
// server reads as the API expects; every kind names its channels, builds
// its subscribe paths and refuses what it cannot serve.
func TestKinds(t *testing.T) {
	pub := publisher{Key: "K", User: "u", Secret: "s"}
	for _, tc := range []struct {
		kind, ch, path, body, sub string
		peer, longpoll            bool
		hello                     string
	}{
		{"halley", "u-b-x3", "/write", "api_key=K&qname=u-b-x3&msg=1.2.x", "/read/ws?qname=u-b-x1", false, true, ""},
		{"cometify", "bx3", "/K/push/bx3", "identifier=bx3&secret=0&text=1.2.x&secure=" + cfSecure("K", "s", "bx3", "1.2.x"),
			"/K/listen?identifiers=bx1", false, true, ""},
		{"nchan", "bx3", "/pub/bx3", "1.2.x", "/sub/bx1", true, true, ""},
		{"centrifuge", "bx3", "/pub/bx3", "1.2.x", "/connection/websocket?cf_ws_frame_ping_pong=true&channel=bx1", true, false, `{"id":1,"connect":{}}`},
	} {
		k, err := kindOf(tc.kind)
		if err != nil || k.name() != tc.kind {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		if ch := k.channel("u", "b-x", 3); ch != tc.ch {
			t.Errorf("%s: channel %q", tc.kind, ch)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(k.publish(pub, "h:1", tc.ch, []byte("1.2.x")))))
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		body, _ := io.ReadAll(req.Body)
		if req.Method != "POST" || req.URL.Path != tc.path || string(body) != tc.body || req.Host != "h:1" {
			t.Errorf("%s: %s %s %q", tc.kind, req.Method, req.URL.Path, body)
		}
		c := clientConfig{Kind: tc.kind, Mode: "ws", QName: k.qname("u", "b-x"), Key: "K", Channels: 3, Timeout: 120,
			Target: "http://127.0.0.1:1", PerIP: 1, DialConc: 1, MaxLife: time.Second}
		if p := c.subPath(7, ""); p != tc.sub {
			t.Errorf("%s: subscribe path %q", tc.kind, p)
		}
		if err := c.validate(); err != nil {
			t.Errorf("%s: %v", tc.kind, err)
		}
		c.Mode = "longpoll"
		if err := c.validate(); (err == nil) != tc.longpoll || k.supports("longpoll") != tc.longpoll {
			t.Errorf("%s: long-poll accepted %v", tc.kind, err == nil)
		}
		if isPeer(k) != tc.peer || string(k.hello()) != tc.hello {
			t.Errorf("%s: peer %v hello %q", tc.kind, isPeer(k), k.hello())
		}
		if !k.published(&response{status: 200, body: []byte(`{"code":"ok"}`)}) || k.published(&response{status: 503}) {
			t.Errorf("%s: answers", tc.kind)
		}
	}
	if _, err := kindOf("ezcomet"); err == nil || !strings.Contains(err.Error(), "halley, cometify, nchan, centrifuge") {
		t.Errorf("unknown kind: %v", err)
	}
	for _, k := range []string{"halley", "cometify"} {
		if mustKind(k).checkPublisher(publisher{}) == nil {
			t.Errorf("%s: no credentials accepted", k)
		}
	}
	// A fresh Halley's credentials: EZComet writes with the private key,
	// Cometify signs with the public one; the peers take none.
	cred := credentials{key: "priv", cfKey: "pub", secret: "s"}
	for k, want := range map[string]publisher{"halley": {"priv", "u", "s"}, "cometify": {"pub", "u", "s"}, "nchan": {}, "centrifuge": {}} {
		if p := cred.publisher(mustKind(k), "u"); p != want {
			t.Errorf("%s: %+v", k, p)
		}
	}
}

func TestCentrifugeNext(t *testing.T) {
	k := centrifugeKind{}
	push := func(data string, off int) string {
		return `{"push":{"channel":"bf0","pub":{"data":"` + data + `","offset":` + strconv.Itoa(off) + `}}}`
	}
	type msg struct {
		payload string
		id      int64
		ignore  bool
	}
	for _, tc := range []struct {
		frame string
		want  []msg
	}{
		{push("1.2.x", 7), []msg{{"1.2.x", 7, false}}},
		{push("1.2.x", 7) + "\n" + push("2.3.x", 8) + "\n" + push("3.4.x", 9), []msg{{"1.2.x", 7, false}, {"2.3.x", 8, false}, {"3.4.x", 9, false}}},
		{push("1.2.x", 7) + "\n", []msg{{"1.2.x", 7, false}}},
		// The decoder's shapes: the epoch, an escape, spaces, no offset, data not a string.
		{`{"push":{"channel":"bf0","pub":{"data":"1.2.x","offset":1,"epoch":"e"}}}`, []msg{{"1.2.x", 1, false}}},
		{`{"push":{"channel":"bf0","pub":{"data":"1.2.\"x","offset":2}}}`, []msg{{`1.2."x`, 2, false}}},
		{`{"push": {"channel": "bf0", "pub": {"data": "1.2.x", "offset": 3}}}`, []msg{{"1.2.x", 3, false}}},
		{`{"push":{"channel":"bf0","pub":{"data":"1.2.x"}}}`, []msg{{"1.2.x", -1, false}}},
		{`{"push":{"channel":"bf0","pub":{"data":{"a":1},"offset":4}}}`, []msg{{`{"a":1}`, 4, false}}},
		// Not deliveries: the connect reply, a ping, an empty line.
		{`{"id":1,"connect":{"client":"x","subs":{"bf0":{}}}}` + "\n{}\n\n" + push("1.2.x", 5), []msg{{"", -1, true}, {"", -1, true}, {"", -1, true}, {"1.2.x", 5, false}}},
		// Bad: not JSON, a push without a publication, an offset out of range.
		{`garbage`, []msg{{"", -1, false}}},
		{`{"push":{"channel":"bf0"}}`, []msg{{"", -1, false}}},
		{`{"push":{"channel":"bf0","pub":{"data":"x","offset":18446744073709551615}}}`, []msg{{"", -1, false}}},
		{`{"push":{"channel":"bf0","pub":{"data":"x","offset":-1}}}`, []msg{{"", -1, false}}},
	} {
		var got []msg
		for f := []byte(tc.frame); len(f) > 0; {
			var p []byte
			var m msg
			p, m.id, m.ignore, f = k.next(f)
			m.payload = string(p)
			got = append(got, m)
			if len(got) > 10 {
				break
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %+v", tc.frame, got)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: message %d %+v, want %+v", tc.frame, i, got[i], tc.want[i])
			}
		}
	}
	// A frame of several pushes is several deliveries of one subscriber.
	f := &fanState{kind: k, msgs: 4, subs: []*fanSub{newFanSub(4)}}
	now := time.Now().UnixNano()
	frame := push(string(fanPayload(0, now, 20)), 1) + "\n" + push(string(fanPayload(1, now, 20)), 2) + "\n{}"
	if n := f.onFrameAt(0, []byte(frame), now); n != 2 || f.subs[0].got != 2 || f.subs[0].order != 0 || f.bad.Load() != 0 {
		t.Fatalf("%d deliveries, sub %+v", n, f.subs[0])
	}
	// The compact shape is read without allocating.
	p := []byte(push(string(fanPayload(17, now, 100)), 12) + "\n" + push(string(fanPayload(18, now, 100)), 13))
	if n := testing.AllocsPerRun(100, func() {
		for b := p; len(b) > 0; {
			var m []byte
			m, _, _, b = k.next(b)
			parseFanPayload(m)
		}
	}); n != 0 {
		t.Fatalf("%v allocs per frame", n)
	}
}

// FuzzCentrifugeNext: any frame is split into lines without a panic or a
// loop, and a line the compact scan reads is read the same by the JSON
// decoder.
func FuzzCentrifugeNext(f *testing.F) {
	for _, s := range []string{
		`{"push":{"channel":"bf0","pub":{"data":"1.2.x","offset":7}}}`,
		`{"push":{"channel":"bf0","pub":{"data":"1.2.x","offset":7}}}` + "\n" + `{"push":{"channel":"bf0","pub":{"data":"2.2.x","offset":8}}}`,
		`{"push":{"channel":"bf0","pub":{"data":"1.2.x","offset":1,"epoch":"e"}}}`,
		`{"id":1,"connect":{"client":"x","subs":{"bf0":{}}}}`,
		"{}\n\n",
		`{"push":{"channel":"a","pub":{"data":"\u0041","offset":0}}}`,
	} {
		f.Add([]byte(s))
	}
	k := centrifugeKind{}
	f.Fuzz(func(t *testing.T, frame []byte) {
		lines := bytes.Count(frame, []byte{'\n'}) + 1
		n := 0
		for b := frame; len(b) > 0; n++ {
			if n > lines {
				t.Fatalf("more messages than lines in %q", frame)
			}
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line = b[:i]
			}
			var p []byte
			var id int64
			var ignore bool
			p, id, ignore, b = k.next(b)
			if ignore && p != nil {
				t.Fatalf("ignored message with a payload in %q", line)
			}
			if data, sid, ok := centrifugePushScan(line); ok {
				ddata, did, push, dok := centrifugePushDecode(line)
				if !dok || !push || string(ddata) != string(data) || did != sid || id != sid || string(p) != string(data) {
					t.Fatalf("%q: scan %q %d, decoder %q %d %v %v", line, data, sid, ddata, did, push, dok)
				}
			}
		}
	})
}
