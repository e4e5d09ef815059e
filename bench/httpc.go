package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// formBody builds an application/x-www-form-urlencoded body from name/value
// pairs, in the order given.
func formBody(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(pairs[i+1]))
	}
	return b.String()
}

// response is what readResponse keeps of an HTTP/1.1 answer.
type response struct {
	status       int
	body         []byte // at most maxKeep bytes of the body
	close        bool   // server said Connection: close (or HTTP/1.0 without keep-alive)
	lastModified string
	etag         string
	accept       string // Sec-WebSocket-Accept
}

var errLineTooLong = errors.New("http: header line too long")

// readLine reads one line without its CRLF; it copies only when the line
// does not fit the reader's buffer.
func readLine(br *bufio.Reader, scratch []byte) ([]byte, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		scratch = append(scratch[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			scratch = append(scratch, line...)
			if len(scratch) > 64<<10 {
				return nil, scratch, errLineTooLong
			}
		}
		line = scratch
	}
	if err != nil {
		return nil, scratch, err
	}
	line = bytes.TrimRight(line, "\r\n")
	return line, scratch, nil
}

// readResponse reads one HTTP/1.x response from br (a small, cheap parser:
// status, the few headers this harness needs, Content-Length or chunked
// bodies). The body is appended to r.body[:0] up to maxKeep bytes; the rest
// is discarded. noBody is for answers to upgrade requests. parseResponse
// reads the same from bytes the caller holds.
func readResponse(br *bufio.Reader, r *response, maxKeep int, noBody bool) error {
	var scratch []byte
	line, scratch, err := readLine(br, scratch)
	if err != nil {
		return err
	}
	if err := statusLine(line, r); err != nil {
		return err
	}
	f := respFraming{clen: -1}
	for {
		line, scratch, err = readLine(br, scratch)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if err := headerLine(line, r, &f); err != nil {
			return err
		}
	}
	if noBody || bodyless(r.status) {
		return nil
	}
	switch {
	case f.chunked:
		for {
			line, scratch, err = readLine(br, scratch)
			if err != nil {
				return err
			}
			n, err := chunkSize(line)
			if err != nil {
				return err
			}
			if n == 0 {
				for { // trailers
					line, scratch, err = readLine(br, scratch)
					if err != nil {
						return err
					}
					if len(line) == 0 {
						return nil
					}
				}
			}
			if err := readBody(br, r, n, maxKeep); err != nil {
				return err
			}
			if line, scratch, err = readLine(br, scratch); err != nil || len(line) != 0 {
				if err == nil {
					err = errChunkEnd
				}
				return err
			}
		}
	case f.clen >= 0:
		return readBody(br, r, f.clen, maxKeep)
	default: // until EOF
		r.close = true
		err := readBody(br, r, 1<<62, maxKeep)
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil
		}
		return err
	}
}

// respFraming is what a response's header lines say of its body.
type respFraming struct {
	clen    int64 // Content-Length (-1: none)
	chunked bool  // Transfer-Encoding: chunked
}

var errChunkEnd = errors.New("http: bad chunk end")

// statusLine reads a status line ("HTTP/1.1 200 OK", without its line
// end) into r and clears what r kept of the previous response.
func statusLine(line []byte, r *response) error {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("http: bad status line %q", line)
	}
	st, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return fmt.Errorf("http: bad status line %q", line)
	}
	r.status = st
	r.close = line[7] == '0' // HTTP/1.0: closed unless it says keep-alive
	r.lastModified, r.etag, r.accept = "", "", ""
	r.body = r.body[:0]
	return nil
}

// headerLine reads one header line into r (the headers it keeps) and f
// (the body's framing); lines that are not "name: value" are ignored.
func headerLine(line []byte, r *response, f *respFraming) error {
	k, v, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return nil
	}
	v = bytes.TrimSpace(v)
	switch {
	case asciiEqualFold(k, "content-length"):
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("http: bad content-length %q", v)
		}
		f.clen = n
	case asciiEqualFold(k, "transfer-encoding"):
		f.chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
	case asciiEqualFold(k, "connection"):
		lv := bytes.ToLower(v)
		if bytes.Contains(lv, []byte("close")) {
			r.close = true
		} else if bytes.Contains(lv, []byte("keep-alive")) {
			r.close = false
		}
	case asciiEqualFold(k, "last-modified"):
		r.lastModified = string(v)
	case asciiEqualFold(k, "etag"):
		r.etag = string(v)
	case asciiEqualFold(k, "sec-websocket-accept"):
		r.accept = string(v)
	}
	return nil
}

// bodyless says whether a response of this status has no body whatever
// its headers say (RFC 9112 6.3).
func bodyless(status int) bool {
	return status/100 == 1 || status == 204 || status == 304
}

// chunkSize reads a chunk-size line (extensions ignored).
func chunkSize(line []byte) (int64, error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("http: bad chunk size %q", line)
	}
	return n, nil
}

func readBody(br *bufio.Reader, r *response, n int64, maxKeep int) error {
	for n > 0 {
		if room := maxKeep - len(r.body); room > 0 {
			k := int64(room)
			if k > n {
				k = n
			}
			old := len(r.body)
			r.body = append(r.body, make([]byte, k)...)
			got, err := io.ReadFull(br, r.body[old:])
			r.body = r.body[:old+got]
			n -= int64(got)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			continue
		}
		got, err := br.Discard(int(min(n, 1<<30)))
		n -= int64(got)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hostPort splits a base URL like http://127.0.0.1:8080 into the dial
// address and the Host header value.
func hostPort(target string) (addr, host string, err error) {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return "", "", err
	}
	if u.Scheme != "http" && u.Scheme != "ws" {
		return "", "", fmt.Errorf("target %q: only http:// (plain TCP) is supported", target)
	}
	host = u.Host
	addr = host
	if u.Port() == "" {
		addr = host + ":80"
	}
	if u.Hostname() == "" {
		return "", "", fmt.Errorf("target %q has no host", target)
	}
	return addr, host, nil
}
