package conformance

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// refWS is a reference WebSocket server written from RFC 6455 and C-13 for
// this test alone: the C-13 cases must pass against it, so that a failure
// against Halley is Halley's. It serves the two endpoints the cases use
// and the writes and pushes that deliver to them.
type refWS struct {
	mu    sync.Mutex
	conns map[string]map[net.Conn]*sync.Mutex // by path: write locks
	ids   int
}

func (s *refWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, body string) {
		w.Header().Set("Content-Type", jsonCT)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	switch {
	case r.URL.Path == "/write":
		_ = r.ParseForm()
		tick := r.Form.Get("tick")
		if tick == "" {
			tick = randHex(16)
		}
		s.broadcast("/read/ws?qname="+r.Form.Get("qname"), fmt.Sprintf("[%q,%q]", tick, r.Form.Get("msg")))
		answer(200, fmt.Sprintf(`{"code":"ok","tick":%q}`, tick))
	case strings.Contains(r.URL.Path, "/push/"):
		_ = r.ParseForm()
		x := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		s.mu.Lock()
		s.ids++
		id := s.ids
		s.mu.Unlock()
		s.broadcast("listen:"+x, fmt.Sprintf(`{"identifier":%q,"id":%d,"data":%q}`, x, id, r.Form.Get("text")))
		answer(200, fmt.Sprintf(`{"code":"ok","push_id":%d}`, id))
	case r.URL.Path == "/read/ws" || strings.HasSuffix(r.URL.Path, "/listen"):
		key := r.Header.Get("Sec-WebSocket-Key")
		if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
			w.Header().Set("Sec-WebSocket-Version", "13")
			answer(426, `{"code":"error","msg":"version","status":426}`)
			return
		}
		if b, err := base64.StdEncoding.Strict().DecodeString(key); err != nil || len(b) != 16 {
			answer(400, `{"code":"error","msg":"key","status":400}`)
			return
		}
		path := "/read/ws?qname=" + r.URL.Query().Get("qname")
		if r.URL.Path != "/read/ws" {
			path = "listen:" + r.URL.Query().Get("identifiers")
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
		wmu := &sync.Mutex{}
		s.mu.Lock()
		if s.conns[path] == nil {
			s.conns[path] = map[net.Conn]*sync.Mutex{}
		}
		s.conns[path][c] = wmu
		s.mu.Unlock()
		go func() {
			s.serveWS(c, brw.Reader, wmu)
			s.mu.Lock()
			delete(s.conns[path], c)
			s.mu.Unlock()
		}()
	default:
		answer(404, `{"code":"error","msg":"no","status":404}`)
	}
}

func (s *refWS) broadcast(path, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, wmu := range s.conns[path] {
		wmu.Lock()
		_, _ = c.Write(appendServerFrame(nil, opText, []byte(msg)))
		wmu.Unlock()
	}
}

func appendServerFrame(dst []byte, op byte, p []byte) []byte {
	return append(dst, buildFrame(true, 0, op, p, false)...)
}

// serveWS reads client frames and enforces RFC 6455 as C-13 words it.
func (s *refWS) serveWS(c net.Conn, br *bufio.Reader, wmu *sync.Mutex) {
	defer c.Close()
	send := func(op byte, p []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = c.Write(appendServerFrame(nil, op, p))
	}
	fail := func(code int) {
		send(opClose, binary.BigEndian.AppendUint16(nil, uint16(code)))
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, br)
	}
	var msg []byte
	inMsg, text := false, false
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		fin, rsv, op := h[0]&0x80 != 0, h[0]>>4&7, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			_, _ = io.ReadFull(br, e[:])
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			_, _ = io.ReadFull(br, e[:])
			n = binary.BigEndian.Uint64(e[:])
		}
		switch {
		case rsv != 0, h[1]&0x80 == 0, op >= 3 && op <= 7 || op >= 11, op >= 8 && (!fin || n > 125):
			fail(closeProtocol)
			return
		case n > 65536:
			fail(closeTooBig)
			return
		}
		var key [4]byte
		_, _ = io.ReadFull(br, key[:])
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= key[i%4]
		}
		switch op {
		case opPing:
			send(opPong, p)
		case opPong:
		case opClose:
			switch {
			case len(p) == 1:
				fail(closeProtocol)
				return
			case len(p) >= 2:
				code := int(binary.BigEndian.Uint16(p))
				if code < 1000 || code > 1003 && code < 1007 || code > 1011 && code < 3000 || code > 4999 {
					fail(closeProtocol)
					return
				}
				if !utf8.Valid(p[2:]) {
					fail(closeInvalidData)
					return
				}
				send(opClose, p[:2])
			default:
				send(opClose, nil)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = io.Copy(io.Discard, br)
			return
		case opCont:
			if !inMsg {
				fail(closeProtocol)
				return
			}
			msg = append(msg, p...)
		default:
			if inMsg {
				fail(closeProtocol)
				return
			}
			inMsg, text, msg = true, op == opText, p
		}
		if op < 8 && fin {
			inMsg = false
			if text && !utf8.Valid(msg) {
				fail(closeInvalidData)
				return
			}
		}
	}
}

// TestRFC6455CasesPassAReference runs the C-13 cases against refWS: each
// must pass, so that what they demand is what RFC 6455 and C-13 say.
func TestRFC6455CasesPassAReference(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every C-13 case")
	}
	srv := httptest.NewServer(&refWS{conns: map[string]map[net.Conn]*sync.Mutex{}})
	t.Cleanup(srv.Close)
	cfg := Config{Target: srv.URL, Account: Account{User: "ref", Key: strings.Repeat("a", 32), Secret: strings.Repeat("s", 24)}}
	cfg.EnsureDefaults()
	var out bytes.Buffer
	sum := run(cfg, rfc6455Cases(), textReporter(&out))
	if sum.Failed != 0 || sum.Skipped != 0 || sum.Passed != len(rfc6455Cases()) {
		t.Errorf("C-13 against a reference server:\n%s", out.String())
	}
}
