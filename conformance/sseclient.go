package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sseConn is a minimal Server-Sent Events client. One goroutine decodes the
// body (chunked or not) and parses events per the HTML Living Standard's
// event-stream rules; next hands them out with a deadline, so a wait that
// times out never leaves a parser half-way through a line.
type sseConn struct {
	t      *caseT
	w      *wireConn
	resp   *reply
	body   io.Reader
	once   sync.Once
	events chan sseEvent
}

// sseEvent is one dispatched event, a comment line, or the error that
// ended the stream.
type sseEvent struct {
	event   string // "" means "message"
	data    string
	id      string
	hasID   bool
	hasData bool
	comment bool
	err     error
	at      time.Time
}

// openSSE GETs target as an event stream. On any answer other than a 200
// text/event-stream it returns nil and that answer, body read.
func (t *caseT) openSSE(target string, headers ...string) (*sseConn, *reply) {
	w := t.dial()
	w.send(t.request("GET", target, "", append([]string{"Accept: text/event-stream"}, headers...)...))
	_ = w.c.SetReadDeadline(t.within(defaultWait))
	resp, err := http.ReadResponse(w.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("SSE GET %s: %v", target, err)
	}
	r := &reply{status: resp.StatusCode, proto: resp.Proto, header: resp.Header}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("SSE GET %s: reading %d body: %v", target, resp.StatusCode, err)
		}
		r.body = body
		return nil, r
	}
	_ = w.c.SetReadDeadline(time.Time{})
	return &sseConn{t: t, w: w, resp: r, body: resp.Body}, nil
}

// mustSSE is openSSE that fails the case unless the stream opens.
func (t *caseT) mustSSE(target string, headers ...string) *sseConn {
	c, r := t.openSSE(target, headers...)
	if c == nil {
		t.Fatalf("GET %s: want a 200 text/event-stream, got %s", target, r)
	}
	return c
}

func (c *sseConn) start() {
	c.once.Do(func() {
		c.events = make(chan sseEvent, 1<<14)
		go c.readLoop()
	})
}

func (c *sseConn) readLoop() {
	defer close(c.events)
	br := bufio.NewReader(c.body)
	var ev sseEvent
	var data bytes.Buffer
	for {
		line, err := readSSELine(br)
		if err != nil {
			c.events <- sseEvent{err: err, at: time.Now()}
			return
		}
		if line == "" {
			if ev.hasData || ev.hasID {
				ev.data = strings.TrimSuffix(data.String(), "\n")
				ev.at = time.Now()
				c.events <- ev
			}
			ev, data = sseEvent{}, bytes.Buffer{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			c.events <- sseEvent{comment: true, data: line[1:], at: time.Now()}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.event = value
		case "data":
			ev.hasData = true
			data.WriteString(value + "\n")
		case "id":
			ev.id, ev.hasID = value, true
		}
	}
}

// readSSELine reads one line ended by CRLF, LF or CR.
func readSSELine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if n, err := br.Peek(1); err == nil && n[0] == '\n' {
				_, _ = br.ReadByte()
			}
			return b.String(), nil
		}
		b.WriteByte(c)
	}
}

// next returns the next event or comment within d (scaled); ok is false
// when nothing arrived in time.
func (c *sseConn) next(d time.Duration) (sseEvent, bool) {
	c.start()
	timer := time.NewTimer(c.t.cfg.scaled(d))
	defer timer.Stop()
	select {
	case e, open := <-c.events:
		if !open {
			return sseEvent{err: io.EOF}, true
		}
		return e, true
	case <-timer.C:
		return sseEvent{}, false
	case <-c.t.ctx.Done():
		return sseEvent{err: c.t.ctx.Err()}, true
	}
}

// nextEvent is next skipping comments.
func (c *sseConn) nextEvent(d time.Duration) (sseEvent, bool) {
	end := time.Now().Add(c.t.cfg.scaled(d))
	for {
		left := time.Until(end)
		if left <= 0 {
			return sseEvent{}, false
		}
		e, ok := c.next(time.Duration(float64(left) / c.t.cfg.TimeoutScale))
		if !ok || !e.comment {
			return e, ok
		}
	}
}

func (c *sseConn) close() { c.w.close() }

// describe renders an SSE event for failure details.
func (e sseEvent) describe() string {
	if e.err != nil {
		return "error " + e.err.Error()
	}
	return fmt.Sprintf("event=%q id=%q data=%s", e.event, e.id, strconv.Quote(e.data))
}
