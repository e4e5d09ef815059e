package bench

import (
	"bytes"
	"errors"
	"io"
)

// parseResponse parses the HTTP/1.x response at the start of b as
// readResponse reads one from a stream (the same status line, headers,
// framing and maxKeep), for callers that hold the bytes themselves. It
// returns the response's length, or 0 when b does not hold all of it yet.
// eof says that nothing follows b: a body that ends with the connection
// then ends with b, and an incomplete response is io.ErrUnexpectedEOF.
// r.body is a copy; r is only meaningful when the length is not 0.
func parseResponse(b []byte, r *response, maxKeep int, eof bool) (int, error) {
	cur := respCursor{b: b}
	line, ok := cur.line()
	if !ok {
		return cur.short(eof)
	}
	if err := statusLine(line, r); err != nil {
		return 0, err
	}
	f := respFraming{clen: -1}
	for {
		if line, ok = cur.line(); !ok {
			return cur.short(eof)
		}
		if len(line) == 0 {
			break
		}
		if err := headerLine(line, r, &f); err != nil {
			return 0, err
		}
	}
	if bodyless(r.status) {
		return cur.pos, nil
	}
	switch {
	case f.chunked:
		for {
			if line, ok = cur.line(); !ok {
				return cur.short(eof)
			}
			n, err := chunkSize(line)
			if err != nil {
				return 0, err
			}
			if n == 0 {
				for { // trailers
					if line, ok = cur.line(); !ok {
						return cur.short(eof)
					}
					if len(line) == 0 {
						return cur.pos, nil
					}
				}
			}
			if !cur.body(r, n, maxKeep) {
				return cur.shortBody(eof)
			}
			if line, ok = cur.line(); !ok {
				return cur.short(eof)
			}
			if len(line) != 0 {
				return 0, errChunkEnd
			}
		}
	case f.clen >= 0:
		if !cur.body(r, f.clen, maxKeep) {
			return cur.shortBody(eof)
		}
		return cur.pos, nil
	default: // until the connection ends
		if !eof {
			return 0, nil
		}
		r.close = true
		cur.body(r, int64(len(b)-cur.pos), maxKeep)
		return cur.pos, nil
	}
}

// respCursor walks a response held in b.
type respCursor struct {
	b   []byte
	pos int // the first byte not yet read
}

// maxRespLine is the longest header or chunk line taken (readLine's bound).
const maxRespLine = 64 << 10

// line returns the next line without its line end (as readLine: the CR
// and LF it ends with) and moves past it; false when b holds no line end.
func (c *respCursor) line() ([]byte, bool) {
	i := bytes.IndexByte(c.b[c.pos:], '\n')
	if i < 0 {
		return nil, false
	}
	l := bytes.TrimRight(c.b[c.pos:c.pos+i+1], "\r\n")
	c.pos += i + 1
	return l, true
}

// body moves past n bytes of body, keeping them in r.body up to maxKeep
// in all; false when b does not hold them all.
func (c *respCursor) body(r *response, n int64, maxKeep int) bool {
	if n > int64(len(c.b)-c.pos) {
		return false
	}
	if room := maxKeep - len(r.body); room > 0 {
		r.body = append(r.body, c.b[c.pos:c.pos+int(min(n, int64(room)))]...)
	}
	c.pos += int(n)
	return true
}

// short is parseResponse's answer when a line is incomplete.
func (c *respCursor) short(eof bool) (int, error) {
	if len(c.b)-c.pos > maxRespLine {
		return 0, errLineTooLong
	}
	return c.shortBody(eof)
}

// shortBody is parseResponse's answer when the body is incomplete.
func (c *respCursor) shortBody(eof bool) (int, error) {
	if eof {
		return 0, io.ErrUnexpectedEOF
	}
	return 0, nil
}

// respSink takes the responses a respStream parses; r is only valid
// during the call. A non-nil error stops the feed.
type respSink interface {
	response(r *response) error
}

// respStream is the receive side of one keep-alive HTTP/1.1 connection
// (a long-poll), parsed from raw reads: a response is parsed where the
// read left it (the reader's buffer), and only the bytes of one whose end
// has not been read yet are carried in part, which is nil again once it
// completes. An idle connection holds no buffer.
type respStream struct {
	part []byte
}

// maxRespPart bounds what a respStream carries of an incomplete response
// (a long-poll answer is a few hundred bytes).
const maxRespPart = 1 << 20

// lpKeep is how much of a long-poll answer's body is kept for pollAnswer.
const lpKeep = 1 << 16

var errRespTooLong = errors.New("http: response longer than 1 MiB")

// feed parses the bytes of one read (or, with eof, the end of the
// connection: b is then usually empty) and passes every complete response
// to sink, r being the caller's scratch. At eof it returns io.EOF when
// nothing incomplete was left, else the error that ended the parse.
func (s *respStream) feed(b []byte, eof bool, r *response, sink respSink) error {
	data := b
	if len(s.part) > 0 {
		s.part = append(s.part, b...)
		data = s.part
	}
	for len(data) > 0 {
		n, err := parseResponse(data, r, lpKeep, eof)
		if err != nil {
			s.part = nil
			return err
		}
		if n == 0 {
			break
		}
		data = data[n:]
		if err := sink.response(r); err != nil {
			s.part = nil
			return err
		}
	}
	switch {
	case len(data) == 0:
		s.part = nil
	case len(data) > maxRespPart:
		s.part = nil
		return errRespTooLong
	case len(s.part) > 0: // data is the tail of part: move it to the front
		s.part = append(s.part[:0], data...)
	default:
		s.part = append([]byte(nil), data...)
	}
	if eof {
		return io.EOF
	}
	return nil
}
