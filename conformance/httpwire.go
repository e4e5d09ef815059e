package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// defaultWait bounds one socket operation that should be quick.
const defaultWait = 10 * time.Second

// wireConn is a raw client connection: the case writes exact bytes and reads
// whole HTTP responses. It belongs to one goroutine at a time.
type wireConn struct {
	t  *caseT
	c  net.Conn
	br *bufio.Reader
}

// dial opens a TCP connection to the target, closed when the case ends.
func (t *caseT) dial() *wireConn {
	c, err := t.dialErr(0)
	if err != nil {
		t.Fatalf("connect %s: %v", t.cfg.hostPort(), err)
	}
	return c
}

// dialErr dials; a non-zero rcvbuf shrinks the socket's receive buffer
// before connecting, so a client that does not read stops the server's
// sends early instead of letting the kernel absorb megabytes.
func (t *caseT) dialErr(rcvbuf int) (*wireConn, error) {
	d := net.Dialer{Deadline: t.within(defaultWait)}
	if t.src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: t.src.AsSlice()}
	}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.DialContext(t.ctx, "tcp", t.cfg.hostPort())
	if err != nil {
		return nil, err
	}
	t.track(c)
	return &wireConn{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (w *wireConn) close() { _ = w.c.Close() }

// send writes raw bytes or fails the case.
func (w *wireConn) send(s string) {
	if err := w.trySend(s); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

func (w *wireConn) trySend(s string) error {
	_ = w.c.SetWriteDeadline(w.t.within(defaultWait))
	_, err := io.WriteString(w.c, s)
	return err
}

// read reads one whole response or fails the case.
func (w *wireConn) read() *reply {
	r, err := w.readErr("GET", defaultWait)
	if err != nil {
		w.t.Fatalf("reading response: %v", err)
	}
	return r
}

// readErr reads one whole response, body included, within d (scaled).
// method is the request's, so a HEAD answer is read without a body.
func (w *wireConn) readErr(method string, d time.Duration) (*reply, error) {
	_ = w.c.SetReadDeadline(w.t.within(d))
	resp, err := http.ReadResponse(w.br, &http.Request{Method: method})
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %d body: %w", resp.StatusCode, err)
	}
	return &reply{status: resp.StatusCode, proto: resp.Proto, header: resp.Header, body: body, close: resp.Close}, nil
}

// closedWithin reports whether the server closed the connection within d
// (scaled), and any bytes it sent first.
func (w *wireConn) closedWithin(d time.Duration) (bool, []byte) {
	_ = w.c.SetReadDeadline(w.t.within(d))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := w.br.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false, got
			}
			return true, got
		}
	}
}

// expectClosed fails the case unless the server closes within d.
func (w *wireConn) expectClosed(d time.Duration, why string) {
	closed, extra := w.closedWithin(d)
	if !closed {
		w.t.Fatalf("%s: connection still open after %v", why, w.t.cfg.scaled(d))
	}
	if len(extra) > 0 {
		w.t.Fatalf("%s: unexpected bytes before close: %q", why, clip(extra))
	}
}

// reply is one HTTP response as the suite read it off the wire.
type reply struct {
	status int
	proto  string
	header http.Header
	body   []byte
	close  bool
}

func (r *reply) String() string {
	return fmt.Sprintf("%d %s %q", r.status, r.header.Get("Content-Type"), clip(r.body))
}

// clip shortens bytes for a one-line failure detail.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// request builds a raw HTTP/1.1 request. headers are whole "Name: value"
// lines; Host is added unless given, and Content-Length (with a form
// Content-Type unless given) whenever there is a body or the method is POST.
func (t *caseT) request(method, target, body string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	has := func(name string) bool {
		for _, h := range headers {
			if strings.HasPrefix(strings.ToLower(h), strings.ToLower(name)+":") {
				return true
			}
		}
		return false
	}
	if !has("Host") {
		fmt.Fprintf(&b, "Host: %s\r\n", t.cfg.host())
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" || method == "POST" {
		if !has("Content-Type") {
			b.WriteString("Content-Type: application/x-www-form-urlencoded\r\n")
		}
		if !has("Content-Length") {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// do sends one request on a fresh connection and reads its answer.
func (t *caseT) do(method, target, body string, headers ...string) *reply {
	w := t.dial()
	defer w.close()
	w.send(t.request(method, target, body, headers...))
	r, err := w.readErr(method, defaultWait)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return r
}

// doWithin is do with a longer read wait, for answers that may be held.
func (t *caseT) doWithin(d time.Duration, method, target, body string, headers ...string) *reply {
	w := t.dial()
	defer w.close()
	w.send(t.request(method, target, body, headers...))
	r, err := w.readErr(method, d)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return r
}

// jsonCT is the one Content-Type every JSON answer carries (C-03).
const jsonCT = "application/json; charset=utf-8"

// obj decodes a JSON object answer or fails the case; numbers stay
// json.Number so that status fields compare exactly.
func (t *caseT) obj(r *reply, ctx string) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: answer is not a JSON object: %v: %s", ctx, err, r)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the JSON object: %s", ctx, r)
	}
	return m
}

// wantError checks a C-03 error answer with the given status.
func (t *caseT) wantError(r *reply, status int, ctx string) map[string]any {
	if r.status != status {
		t.Fatalf("%s: want HTTP %d, got %s", ctx, status, r)
	}
	if ct := r.header.Get("Content-Type"); ct != jsonCT {
		t.Fatalf("%s: Content-Type %q, want %q", ctx, ct, jsonCT)
	}
	m := t.obj(r, ctx)
	if m["code"] != "error" {
		t.Fatalf(`%s: want "code":"error", got %s`, ctx, r)
	}
	if s, ok := m["msg"].(string); !ok || s == "" {
		t.Fatalf(`%s: want a non-empty "msg" string, got %s`, ctx, r)
	}
	if n, ok := m["status"].(json.Number); !ok || n.String() != fmt.Sprint(status) {
		t.Fatalf(`%s: "status" field must equal the HTTP status %d, got %s`, ctx, status, r)
	}
	return m
}

// wantOK checks a 200 JSON answer with "code":"ok".
func (t *caseT) wantOK(r *reply, ctx string) map[string]any {
	if r.status != 200 {
		t.Fatalf("%s: want 200, got %s", ctx, r)
	}
	if ct := r.header.Get("Content-Type"); ct != jsonCT {
		t.Fatalf("%s: Content-Type %q, want %q", ctx, ct, jsonCT)
	}
	m := t.obj(r, ctx)
	if m["code"] != "ok" {
		t.Fatalf(`%s: want "code":"ok", got %s`, ctx, r)
	}
	return m
}
