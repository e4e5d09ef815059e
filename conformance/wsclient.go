package conformance

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// wsConn is a minimal client WebSocket on a wireConn: the handshake is
// written by hand (so a refused upgrade is read as an ordinary JSON answer)
// and frames are read by one goroutine that answers pings itself.
type wsConn struct {
	t    *caseT
	w    *wireConn
	resp *reply

	once   sync.Once
	frames chan wsFrame
	wmu    sync.Mutex // serialises frame writes (pongs from the reader)

	pmu   sync.Mutex
	pings []time.Time
	pongs [][]byte
}

// wsFrame is one whole message, a close, or the read error that ended the
// stream.
type wsFrame struct {
	op      ws.OpCode
	payload []byte
	code    ws.StatusCode // for OpClose
	reason  string
	err     error
	at      time.Time
}

// openWS upgrades target to a WebSocket. On any answer other than 101 it
// returns nil and that answer, body read.
func (t *caseT) openWS(target string, headers ...string) (*wsConn, *reply) {
	return t.openWSOn(t.dial(), target, headers...)
}

func (t *caseT) openWSOn(w *wireConn, target string, headers ...string) (*wsConn, *reply) {
	kb := make([]byte, 16)
	_, _ = rand.Read(kb)
	key := base64.StdEncoding.EncodeToString(kb)
	hs := append([]string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"}, headers...)
	w.send(t.request("GET", target, "", hs...))
	_ = w.c.SetReadDeadline(t.within(defaultWait))
	resp, err := http.ReadResponse(w.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("WebSocket handshake for %s: %v", target, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("WebSocket handshake for %s: reading %d body: %v", target, resp.StatusCode, err)
		}
		return nil, &reply{status: resp.StatusCode, proto: resp.Proto, header: resp.Header, body: body}
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("WebSocket handshake for %s: Sec-WebSocket-Accept %q, want %q", target, got, want)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("WebSocket handshake for %s: Upgrade header %q", target, resp.Header.Get("Upgrade"))
	}
	_ = w.c.SetReadDeadline(time.Time{})
	return &wsConn{t: t, w: w, resp: &reply{status: 101, header: resp.Header}}, nil
}

// mustWS is openWS that fails the case unless the upgrade succeeds.
func (t *caseT) mustWS(target string) *wsConn {
	c, r := t.openWS(target)
	if c == nil {
		t.Fatalf("GET %s: want a WebSocket upgrade (101), got %s", target, r)
	}
	return c
}

// start launches the reader goroutine on first use, so that a case can hold
// a WebSocket without reading it (the slow-consumer check).
func (c *wsConn) start() {
	c.once.Do(func() {
		c.frames = make(chan wsFrame, 1<<14)
		go c.readLoop()
	})
}

func (c *wsConn) readLoop() {
	defer close(c.frames)
	var msg []byte
	var msgOp ws.OpCode
	for {
		h, err := ws.ReadHeader(c.w.br)
		if err == nil && h.Masked {
			err = fmt.Errorf("server frame is masked (RFC 6455 5.1)")
		}
		var p []byte
		if err == nil {
			p = make([]byte, h.Length)
			_, err = io.ReadFull(c.w.br, p)
		}
		if err != nil {
			c.frames <- wsFrame{err: err, at: time.Now()}
			return
		}
		switch {
		case h.OpCode == ws.OpPing:
			c.pmu.Lock()
			c.pings = append(c.pings, time.Now())
			c.pmu.Unlock()
			_ = c.writeFrame(ws.NewPongFrame(p))
		case h.OpCode == ws.OpPong:
			c.pmu.Lock()
			c.pongs = append(c.pongs, p)
			c.pmu.Unlock()
		case h.OpCode == ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			c.frames <- wsFrame{op: ws.OpClose, code: code, reason: reason, at: time.Now()}
			_ = c.writeFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
			return
		case h.OpCode == ws.OpContinuation:
			msg = append(msg, p...)
			if h.Fin {
				c.frames <- wsFrame{op: msgOp, payload: msg, at: time.Now()}
				msg = nil
			}
		default:
			if !h.Fin {
				msg, msgOp = p, h.OpCode
				continue
			}
			c.frames <- wsFrame{op: h.OpCode, payload: p, at: time.Now()}
		}
	}
}

// writeFrame masks and sends a client frame.
func (c *wsConn) writeFrame(f ws.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.w.c.SetWriteDeadline(c.t.within(defaultWait))
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, ws.MaskFrame(f)); err != nil {
		return err
	}
	_, err := c.w.c.Write(buf.Bytes())
	return err
}

// next returns the next message, close or error within d (scaled); ok is
// false when nothing arrived in time.
func (c *wsConn) next(d time.Duration) (wsFrame, bool) {
	c.start()
	timer := time.NewTimer(c.t.cfg.scaled(d))
	defer timer.Stop()
	select {
	case f, open := <-c.frames:
		if !open {
			return wsFrame{err: io.EOF}, true
		}
		return f, true
	case <-timer.C:
		return wsFrame{}, false
	case <-c.t.ctx.Done():
		return wsFrame{err: c.t.ctx.Err()}, true
	}
}

// pingTimes reports when the server's pings arrived.
func (c *wsConn) pingTimes() []time.Time {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return append([]time.Time(nil), c.pings...)
}

// pongPayloads reports the payloads of the server's pongs.
func (c *wsConn) pongPayloads() [][]byte {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return append([][]byte(nil), c.pongs...)
}

func (c *wsConn) close() { c.w.close() }
