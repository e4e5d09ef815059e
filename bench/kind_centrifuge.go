package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// centrifugeKind is the Centrifuge peer (../shared/peers/centrifuge, a
// minimal server on github.com/centrifugal/centrifuge): POST /pub/<ch>,
// and a bidirectional WebSocket, GET /connection/websocket?channel=<ch>,
// on which the client sends a connect command first and is then
// subscribed server-side. A data frame holds one or several pushes, one
// JSON object per line.
type centrifugeKind struct{}

func (centrifugeKind) name() string   { return "centrifuge" }
func (centrifugeKind) column() string { return "centrifuge" }

// peer is how the suite starts and stops the Centrifuge peer:
// start.sh's default, GOMAXPROCS=1.
func (centrifugeKind) peer(c *runConfig) peerScripts {
	return peerScripts{name: "centrifuge", dir: c.CentrifugeDir, url: c.CentrifugeURL,
		pidFile: "/tmp/centrifuge-run/centrifuge.pid", cores: "GOMAXPROCS=1"}
}

func (k centrifugeKind) start(c *runConfig, _ []string) (*instance, error) { return k.peer(c).start() }

func (centrifugeKind) publisherOf(credentials, string) publisher { return publisher{} }
func (centrifugeKind) flags(bool) string                         { return "--kind centrifuge" }
func (centrifugeKind) checkPublisher(publisher) error            { return nil }
func (centrifugeKind) channel(_, prefix string, n int) string {
	return nchanID(prefix) + strconv.Itoa(n)
}
func (centrifugeKind) published(r *response) bool       { return r.status/100 == 2 }
func (centrifugeKind) qname(_, prefix string) string    { return prefix }
func (centrifugeKind) supports(transport string) bool   { return transport == "ws" }
func (centrifugeKind) pollAnswer([]byte) (string, bool) { return "", false }

func (centrifugeKind) publish(_ publisher, host, ch string, payload []byte) []byte {
	return postRequest("/pub/"+ch, host, "text/plain", string(payload))
}

func (centrifugeKind) checkClient(c *clientConfig) error {
	if c.Mode != "ws" {
		return fmt.Errorf("--kind centrifuge: the peer serves WebSocket subscribers only, not %s", c.Mode)
	}
	return nil
}

// subPath asks for WebSocket ping frames (which any client answers)
// instead of Centrifuge's application-level pings.
func (centrifugeKind) subPath(c *clientConfig, g int, _ string) string {
	return "/connection/websocket?cf_ws_frame_ping_pong=true&channel=" + nchanID(c.QName) + strconv.Itoa(g%c.Channels)
}

// hello is the connect command; the answer is {"id":1,"connect":{…}}.
func (centrifugeKind) hello() []byte { return []byte(`{"id":1,"connect":{}}`) }

// next reads the first line of a frame: a push
// {"push":{"channel":"<ch>","pub":{"data":"<msg>","offset":N}}} is a
// message with push id N; a reply ({"id":1,…}), a ping ({}) or an empty
// line is ignored; anything else is a bad message.
func (centrifugeKind) next(frame []byte) ([]byte, int64, bool, []byte) {
	line, rest := frame, []byte(nil)
	if i := bytes.IndexByte(frame, '\n'); i >= 0 {
		line, rest = frame[:i], frame[i+1:]
		if len(rest) == 0 {
			rest = nil
		}
	}
	if len(line) == 0 {
		return nil, -1, true, rest
	}
	if data, id, ok := centrifugePushScan(line); ok {
		return data, id, false, rest
	}
	data, id, push, ok := centrifugePushDecode(line)
	if !ok {
		return nil, -1, false, rest
	}
	if !push {
		return nil, -1, true, rest
	}
	return data, id, false, rest
}

// centrifugePushScan reads a push in the exact compact shape the server
// writes, {"push":{"channel":"…","pub":{"data":"…","offset":N}}}, without a
// JSON decoder: the clients share the CPUs with the server. ok is false for
// any other shape (an escape, another field, spaces), which the decoder
// then reads.
func centrifugePushScan(line []byte) (data []byte, id int64, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"push":{"channel":"`))
	if !ok {
		return nil, 0, false
	}
	i := plainString(rest)
	if i < 0 {
		return nil, 0, false
	}
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`","pub":{"data":"`)); !ok {
		return nil, 0, false
	}
	if i = plainString(rest); i < 0 {
		return nil, 0, false
	}
	data = rest[:i]
	if rest, ok = bytes.CutPrefix(rest[i:], []byte(`","offset":`)); !ok {
		return nil, 0, false
	}
	j := 0
	for j < len(rest) && '0' <= rest[j] && rest[j] <= '9' && j < 18 {
		id = id*10 + int64(rest[j]-'0')
		j++
	}
	if j == 0 || (j > 1 && rest[0] == '0') || string(rest[j:]) != "}}}" {
		return nil, 0, false
	}
	return data, id, true
}

// plainString is the length of the JSON string contents at the start of
// b up to its closing quote when they need no decoding (printable ASCII,
// no escape), else -1.
func plainString(b []byte) int {
	for i, c := range b {
		switch {
		case c == '"':
			return i
		case c < 0x20 || c >= 0x80 || c == '\\':
			return -1
		}
	}
	return -1
}

// centrifugePushDecode reads any line with the JSON decoder: push is
// false for a valid object that is no push (a reply, a ping), ok is false
// for a line that is not a JSON object or a push without a publication.
// A push without an offset has id -1; data that is not a JSON string is
// the raw JSON.
func centrifugePushDecode(line []byte) (data []byte, id int64, push, ok bool) {
	var m struct {
		Push *struct {
			Pub *struct {
				Data   json.RawMessage `json:"data"`
				Offset *uint64         `json:"offset"`
			} `json:"pub"`
		} `json:"push"`
	}
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &m) != nil {
		return nil, -1, false, false
	}
	if m.Push == nil {
		return nil, -1, false, true
	}
	p := m.Push.Pub
	if p == nil || len(p.Data) == 0 {
		return nil, -1, true, false
	}
	id = -1
	if p.Offset != nil {
		if *p.Offset > math.MaxInt64 {
			return nil, -1, true, false
		}
		id = int64(*p.Offset)
	}
	data = p.Data
	var s string
	if data[0] == '"' && json.Unmarshal(data, &s) == nil {
		data = []byte(s)
	}
	return data, id, true, true
}
