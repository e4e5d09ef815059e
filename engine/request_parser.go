package engine

import (
	"bufio"
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

type parseKind uint8

const (
	parseNeedMore parseKind = iota // wait for more bytes
	parseOK                        // a complete request: consumed bytes
	parseFail                      // answer status via Handler.Fail, then close
)

// parseResult is what requestParser.parse found at the head of a buffer.
type parseResult struct {
	kind     parseKind
	status   int    // parseFail
	msg      string // parseFail
	consumed int    // parseOK: bytes of this request, body included
	// need is, for parseNeedMore, the buffered length at which parsing
	// can succeed (0 when unknown, e.g. chunked bodies).
	need int
	// expectContinue: the headers are complete, the body is not, and the
	// client waits for "100 Continue".
	expectContinue bool
	keepAlive      bool
	head           bool
}

// requestParser parses HTTP/1.x requests straight from a connection's
// buffered bytes. There is one per loop, never one per connection: a
// connection owns no parse state between requests. Not safe for
// concurrent use.
type requestParser struct {
	maxHeader, maxBody int

	hdr  fasthttp.RequestHeader
	rd   bytes.Reader
	br   *bufio.Reader
	body []byte // decoded chunked body
	req  Request
}

func newRequestParser(maxHeader, maxBody int) *requestParser {
	p := &requestParser{maxHeader: maxHeader, maxBody: maxBody}
	p.br = bufio.NewReaderSize(&p.rd, maxHeader+16)
	return p
}

var (
	slashPath       = []byte("/")
	strExpect100    = []byte("100-continue")
	errorBadReq     = parseResult{kind: parseFail, status: 400, msg: "malformed request"}
	errorHeadTooBig = parseResult{kind: parseFail, status: 431, msg: "request header fields too large"}
	errorBodyTooBig = parseResult{kind: parseFail, status: 413, msg: "request body too large"}
	errorVersion    = parseResult{kind: parseFail, status: 505, msg: "HTTP version not supported"}
)

// parse looks for one request at the start of buf. On parseOK and
// parseFail, p.req describes what was parsed; its slices alias buf and
// p's buffers until the next call.
func (p *requestParser) parse(buf []byte, peer netip.Addr) parseResult {
	p.req = Request{PeerAddr: peer, ClientIP: peer, Header: emptyHeader{}}

	// RFC 9112 2.2: ignore empty lines before the request line.
	start := 0
	for start < len(buf) && (buf[start] == '\r' || buf[start] == '\n') {
		start++
	}
	if start > p.maxHeader {
		return errorBadReq
	}
	b := buf[start:]
	lineEnd := bytes.IndexByte(b, '\n')
	if lineEnd < 0 {
		if len(buf) > p.maxHeader {
			return errorHeadTooBig
		}
		if !plausibleRequestLine(b) {
			return errorBadReq
		}
		return parseResult{}
	}
	line := b[:lineEnd]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if start+lineEnd+1 > p.maxHeader {
		return errorHeadTooBig
	}
	if r, ok := checkRequestLine(line); !ok {
		return r
	}
	end := headerEnd(b, lineEnd)
	if end < 0 {
		if len(buf) > p.maxHeader {
			return errorHeadTooBig
		}
		return parseResult{}
	}
	hdrLen := start + end
	if hdrLen > p.maxHeader {
		return errorHeadTooBig
	}

	p.rd.Reset(buf[start:hdrLen])
	p.br.Reset(&p.rd)
	if err := p.hdr.Read(p.br); err != nil || p.br.Buffered() != 0 {
		return errorBadReq
	}
	p.req.Header = &p.hdr
	p.req.Method = p.hdr.Method()
	p.req.Path, p.req.Query = splitTarget(p.hdr.RequestURI())
	p.req.HTTP10 = !p.hdr.IsHTTP11()

	res := parseResult{
		kind:      parseOK,
		keepAlive: !p.hdr.ConnectionClose(),
		head:      p.hdr.IsHead(),
	}
	switch cl := p.hdr.ContentLength(); {
	case cl >= 0:
		if cl > p.maxBody {
			return errorBodyTooBig
		}
		total := hdrLen + cl
		if len(buf) < total {
			return parseResult{need: total, expectContinue: p.expects100()}
		}
		if cl > 0 {
			p.req.Body = buf[hdrLen:total]
		}
		res.consumed = total
	case cl == -1:
		n, status := p.decodeChunked(buf[hdrLen:])
		switch status {
		case 0:
		case 1:
			return parseResult{expectContinue: p.expects100()}
		case 413:
			return errorBodyTooBig
		default:
			return errorBadReq
		}
		p.req.Body = p.body
		res.consumed = hdrLen + n
	default: // no body
		res.consumed = hdrLen
	}
	return res
}

func (p *requestParser) expects100() bool {
	return bytes.EqualFold(p.hdr.Peek("Expect"), strExpect100)
}

// decodeChunked decodes a chunked body at the start of b into p.body. It
// returns the encoded length and 0, or 1 when more bytes are needed, or
// the HTTP status of the failure (400, 413).
func (p *requestParser) decodeChunked(b []byte) (int, int) {
	p.body = p.body[:0]
	// Tiny chunks can make the encoding much bigger than the body.
	if len(b) > 8*p.maxBody+p.maxHeader {
		return 0, 413
	}
	pos := 0
	for {
		j := bytes.IndexByte(b[pos:], '\n')
		if j < 0 {
			if len(b)-pos > 1024 {
				return 0, 400
			}
			return 0, 1
		}
		line := b[pos : pos+j]
		pos += j + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if k := bytes.IndexByte(line, ';'); k >= 0 {
			line = line[:k]
		}
		line = bytes.TrimRight(line, " \t")
		size, ok := parseHexSize(line, p.maxBody)
		if !ok {
			return 0, 400
		}
		if size < 0 || len(p.body)+size > p.maxBody {
			return 0, 413
		}
		if size == 0 {
			// Trailer fields, ignored, up to the empty line.
			for {
				j := bytes.IndexByte(b[pos:], '\n')
				if j < 0 {
					if len(b)-pos > p.maxHeader {
						return 0, 400
					}
					return 0, 1
				}
				line := b[pos : pos+j]
				pos += j + 1
				if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
					return pos, 0
				}
			}
		}
		if len(b)-pos < size+1 {
			return 0, 1
		}
		p.body = append(p.body, b[pos:pos+size]...)
		pos += size
		switch b[pos] {
		case '\n':
			pos++
		case '\r':
			if len(b)-pos < 2 {
				return 0, 1
			}
			if b[pos+1] != '\n' {
				return 0, 400
			}
			pos += 2
		default:
			return 0, 400
		}
	}
}

// parseHexSize parses a chunk size; it returns -1 (and ok) for a size
// above limit.
func parseHexSize(b []byte, limit int) (int, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	n := 0
	for _, ch := range b {
		var d byte
		switch {
		case ch >= '0' && ch <= '9':
			d = ch - '0'
		case ch >= 'a' && ch <= 'f':
			d = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int(d)
		if n > limit {
			return -1, true
		}
	}
	return n, true
}

// headerEnd returns the index in b just past the empty line that ends
// the header block, or -1. lineEnd is the index of the request line's
// '\n'.
func headerEnd(b []byte, lineEnd int) int {
	i := lineEnd
	for {
		s := i + 1
		if s < len(b) && b[s] == '\n' {
			return s + 1
		}
		if s+1 < len(b) && b[s] == '\r' && b[s+1] == '\n' {
			return s + 2
		}
		j := bytes.IndexByte(b[s:], '\n')
		if j < 0 {
			return -1
		}
		i = s + j
	}
}

// isTokenChar reports an RFC 9110 tchar.
func isTokenChar(ch byte) bool {
	if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' {
		return true
	}
	switch ch {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// plausibleRequestLine reports whether b can still become a request line,
// so that garbage is refused at once rather than after MaxHeaderBytes.
func plausibleRequestLine(b []byte) bool {
	i := 0
	for i < len(b) && b[i] != ' ' {
		if !isTokenChar(b[i]) {
			return false
		}
		i++
	}
	if i == 0 && len(b) > 0 {
		return false
	}
	for ; i < len(b); i++ {
		ch := b[i]
		if ch < 0x20 && !(ch == '\r' && i == len(b)-1) || ch == 0x7f {
			return false
		}
	}
	return true
}

// checkRequestLine validates "METHOD SP target SP HTTP/x.y" (CR removed);
// versions other than 1.0 and 1.1 are a 505.
func checkRequestLine(line []byte) (parseResult, bool) {
	i := 0
	for i < len(line) && isTokenChar(line[i]) {
		i++
	}
	if i == 0 || i >= len(line) || line[i] != ' ' {
		return errorBadReq, false
	}
	i++
	t := i
	for i < len(line) && line[i] > ' ' && line[i] != 0x7f {
		i++
	}
	if i == t || i >= len(line) || line[i] != ' ' {
		return errorBadReq, false
	}
	v := line[i+1:]
	if len(v) < 6 || string(v[:5]) != "HTTP/" {
		return errorBadReq, false
	}
	for _, ch := range v[5:] {
		if (ch < '0' || ch > '9') && ch != '.' {
			return errorBadReq, false
		}
	}
	if string(v) != "HTTP/1.1" && string(v) != "HTTP/1.0" {
		return errorVersion, false
	}
	return parseResult{}, true
}

// splitTarget splits a request target into path and raw query; an
// absolute-form target ("http://host/p?q") is reduced to its path.
func splitTarget(uri []byte) (path, query []byte) {
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i > 0 {
			rest := uri[i+3:]
			j := bytes.IndexAny(rest, "/?")
			switch {
			case j < 0:
				return slashPath, nil
			case rest[j] == '?':
				return slashPath, rest[j+1:]
			}
			uri = rest[j:]
		}
	}
	if q := bytes.IndexByte(uri, '?'); q >= 0 {
		return uri[:q], uri[q+1:]
	}
	return uri, nil
}
