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
	// scratch is the chunk progress of a parse called without one.
	scratch chunkScan
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
	// errorFraming: RFC 9112 message framing that cannot be read safely
	// (Transfer-Encoding, Content-Length, chunk lines).
	errorFraming = parseResult{kind: parseFail, status: 400, msg: "malformed request framing"}
)

// chunkScan is the progress of a chunked body still arriving, kept on the
// connection between parse calls so that each framing byte is looked at
// once: a body that arrives in many segments costs what one segment
// costs, and it is decoded (copied) once, when complete. Four integers, no
// buffer: the bytes themselves stay in gnet's inbound buffer. The zero
// value means no chunked body is in progress.
type chunkScan struct {
	hdrLen int32 // length of the request head, leading empty lines included
	// pos is where framing goes on: the start of the next chunk-size or
	// trailer line, or, in csData, the end of the current chunk's data.
	pos  int32
	body int32 // decoded body bytes so far
	st   uint8 // csSize, csData, csTrailer; csNone when no body is in progress
}

const (
	csNone    = iota
	csSize    // at a chunk-size line
	csData    // inside chunk data, which ends at pos (CRLF expected there)
	csTrailer // at a trailer line (the empty line ends the body)
)

// maxChunkLine bounds a chunk-size line, extensions included.
const maxChunkLine = 1024

// parse looks for one request at the start of buf. On parseOK and
// parseFail, p.req describes what was parsed; its slices alias buf and
// p's buffers until the next call. cs carries a chunked body's progress
// from one call to the next for the same bytes (the caller keeps buf's
// start in place and only appends); nil scans from the start.
func (p *requestParser) parse(buf []byte, peer netip.Addr, cs *chunkScan) parseResult {
	p.req = Request{PeerAddr: peer, ClientIP: peer, Header: emptyHeader{}}
	if cs == nil {
		p.scratch = chunkScan{}
		cs = &p.scratch
	}
	if cs.st != csNone {
		// The head was read by an earlier call: go on with the framing,
		// and read the head again only when the body is complete.
		r := p.scanChunked(buf, cs)
		if r.kind != parseOK {
			if r.kind == parseFail {
				*cs = chunkScan{}
			}
			return r
		}
		hdrLen, end := int(cs.hdrLen), int(cs.pos)
		*cs = chunkScan{}
		res, n := p.parseHead(buf)
		if res.kind != parseOK || n != hdrLen || p.hdr.ContentLength() != -1 {
			return errorBadReq // the same bytes parsed differently: cannot happen
		}
		p.req.Body = p.decodeChunked(buf[hdrLen:end])
		res.consumed = end
		return res
	}

	res, hdrLen := p.parseHead(buf)
	if res.kind != parseOK {
		return res
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
		*cs = chunkScan{hdrLen: int32(hdrLen), pos: int32(hdrLen), st: csSize}
		r := p.scanChunked(buf, cs)
		switch r.kind {
		case parseNeedMore:
			r.expectContinue = p.expects100()
			return r
		case parseFail:
			*cs = chunkScan{}
			return r
		}
		end := int(cs.pos)
		*cs = chunkScan{}
		p.req.Body = p.decodeChunked(buf[hdrLen:end])
		res.consumed = end
	default: // no body
		res.consumed = hdrLen
	}
	return res
}

// parseHead parses the request line and headers at the start of buf. On
// parseOK it returns the head's length (leading empty lines included)
// and fills p.req but for the body.
func (p *requestParser) parseHead(buf []byte) (parseResult, int) {
	// RFC 9112 2.2: ignore empty lines before the request line.
	start := 0
	for start < len(buf) && (buf[start] == '\r' || buf[start] == '\n') {
		start++
	}
	if start > p.maxHeader {
		return errorBadReq, 0
	}
	b := buf[start:]
	lineEnd := bytes.IndexByte(b, '\n')
	// Garbage in the request line's first MaxHeaderBytes is a 400 at
	// once, before any size verdict: the answer must not depend on how
	// much of the line has arrived.
	first := b
	if lineEnd >= 0 {
		first = b[:lineEnd]
	}
	if !plausibleRequestLine(first[:min(len(first), p.maxHeader+1-start)]) {
		return errorBadReq, 0
	}
	if lineEnd < 0 {
		if len(buf) > p.maxHeader {
			return errorHeadTooBig, 0
		}
		return parseResult{}, 0
	}
	line := b[:lineEnd]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if start+lineEnd+1 > p.maxHeader {
		return errorHeadTooBig, 0
	}
	if r, ok := checkRequestLine(line); !ok {
		return r, 0
	}
	var fr framing
	end := headerEnd(b, lineEnd, &fr)
	if end < 0 {
		if len(buf) > p.maxHeader {
			return errorHeadTooBig, 0
		}
		return parseResult{}, 0
	}
	hdrLen := start + end
	if hdrLen > p.maxHeader {
		return errorHeadTooBig, 0
	}

	p.rd.Reset(buf[start:hdrLen])
	p.br.Reset(&p.rd)
	if err := p.hdr.Read(p.br); err != nil || p.br.Buffered() != 0 {
		return errorBadReq, 0
	}
	p.req.HTTP10 = !p.hdr.IsHTTP11()
	if !fr.valid(p.req.HTTP10) {
		return errorFraming, 0
	}
	p.req.Header = &p.hdr
	p.req.Method = p.hdr.Method()
	p.req.Path, p.req.Query = splitTarget(p.hdr.RequestURI())
	return parseResult{
		kind:      parseOK,
		keepAlive: !p.hdr.ConnectionClose(),
		head:      p.hdr.IsHead(),
	}, hdrLen
}

func (p *requestParser) expects100() bool {
	return bytes.EqualFold(p.hdr.Peek("Expect"), strExpect100)
}

// framing applies RFC 9112 6.1 and 6.3 to the header lines, as headerEnd
// passes them: Transfer-Encoding at most once, exactly "chunked" (any
// case), never in HTTP/1.0 and never beside Content-Length; every
// Content-Length line a number, all the same; neither continued on an
// obs-fold line. fasthttp refuses some of these itself; this is the whole
// rule in one place, independent of its version. Most lines are passed
// over on their first byte.
type framing struct {
	te          int  // Transfer-Encoding lines
	cl          int  // the Content-Length, when hasCL
	hasCL       bool // a Content-Length line was seen
	bad         bool
	prevFraming bool // the last line was one of the two fields
}

func (f *framing) line(line []byte) {
	if len(line) == 0 {
		return
	}
	switch line[0] {
	case ' ', '\t':
		if f.prevFraming {
			f.bad = true
		}
		return
	case 't', 'T', 'c', 'C':
	default:
		f.prevFraming = false
		return
	}
	f.prevFraming = false
	switch {
	case hasFieldName(line, strTransferEncoding):
		f.prevFraming = true
		f.te++
		value := trimOWS(trimCR(line[len(strTransferEncoding)+1:]))
		if f.te > 1 || !bytes.EqualFold(value, strChunked) {
			f.bad = true
		}
	case hasFieldName(line, strContentLength):
		f.prevFraming = true
		n, ok := parseDecimal(trimOWS(trimCR(line[len(strContentLength)+1:])))
		if !ok || f.hasCL && n != f.cl {
			f.bad = true
		}
		f.cl, f.hasCL = n, true
	}
}

// valid reports the verdict on the whole head.
func (f *framing) valid(http10 bool) bool {
	return !f.bad && (f.te == 0 || !http10 && !f.hasCL)
}

// hasFieldName reports whether line is a field named name (any case),
// the colon right after the name as RFC 9112 5.1 requires (fasthttp
// refuses a space before it).
func hasFieldName(line, name []byte) bool {
	return len(line) > len(name) && line[len(name)] == ':' && bytes.EqualFold(line[:len(name)], name)
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

var (
	strTransferEncoding = []byte("Transfer-Encoding")
	strContentLength    = []byte("Content-Length")
	strChunked          = []byte("chunked")
)

// parseDecimal parses a Content-Length value (1*DIGIT, at most 18 digits).
func parseDecimal(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, true
}

// trimOWS removes RFC 9110 optional whitespace (SP, HTAB) at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// scanChunked checks the chunked framing of buf from cs.pos on (RFC 9112
// 7.1: every line ends in CRLF, a bare LF is an error) and records how
// far it got in cs. It returns parseOK with cs.pos at the end of the
// body, parseNeedMore with the length at which to call again, or the
// failure.
func (p *requestParser) scanChunked(buf []byte, cs *chunkScan) parseResult {
	pos := int(cs.pos)
	defer func() { cs.pos = int32(pos) }()
	for {
		switch cs.st {
		case csSize:
			// Tiny chunks can make the encoding much bigger than the body.
			if pos-int(cs.hdrLen) > 8*p.maxBody+p.maxHeader {
				return errorBodyTooBig
			}
			line, next, r := crlfLine(buf, pos, maxChunkLine)
			if r.kind != parseOK {
				return r
			}
			if k := bytes.IndexByte(line, ';'); k >= 0 {
				line = line[:k]
			}
			size, ok := parseHexSize(bytes.TrimRight(line, " \t"), p.maxBody)
			if !ok {
				return errorFraming
			}
			if size < 0 || int(cs.body)+size > p.maxBody {
				return errorBodyTooBig
			}
			if size == 0 {
				pos, cs.st = next, csTrailer
				continue
			}
			cs.body += int32(size)
			pos, cs.st = next+size, csData
		case csData:
			if len(buf) < pos+2 {
				return parseResult{need: pos + 2}
			}
			if buf[pos] != '\r' || buf[pos+1] != '\n' {
				return errorFraming
			}
			pos, cs.st = pos+2, csSize
		case csTrailer:
			// Trailer fields are ignored, up to the empty line.
			line, next, r := crlfLine(buf, pos, p.maxHeader)
			if r.kind != parseOK {
				return r
			}
			pos = next
			if len(line) == 0 {
				return parseResult{kind: parseOK}
			}
		default:
			return errorBadReq
		}
	}
}

// crlfLine returns the line starting at buf[pos] without its CRLF, and
// the index after it. A line must end in CRLF and hold no control
// character but HTAB; one longer than limit (CR included) is refused,
// whether or not its end has arrived, so the verdict does not depend on
// how the bytes were split.
func crlfLine(buf []byte, pos, limit int) ([]byte, int, parseResult) {
	j := bytes.IndexByte(buf[pos:], '\n')
	if j < 0 {
		if len(buf)-pos > limit {
			return nil, 0, errorFraming
		}
		return nil, 0, parseResult{need: len(buf) + 1}
	}
	if j > limit || j == 0 || buf[pos+j-1] != '\r' {
		return nil, 0, errorFraming
	}
	line := buf[pos : pos+j-1]
	for _, ch := range line {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return nil, 0, errorFraming
		}
	}
	return line, pos + j + 1, parseResult{kind: parseOK}
}

// decodeChunked returns the data of the chunked body b, whose framing
// scanChunked has checked: the one chunk's bytes in place, or the chunks
// copied together into p.body.
func (p *requestParser) decodeChunked(b []byte) []byte {
	var first []byte
	chunks := 0
	p.body = p.body[:0]
	for pos := 0; ; {
		j := bytes.IndexByte(b[pos:], '\n')
		line := b[pos : pos+j-1]
		if k := bytes.IndexByte(line, ';'); k >= 0 {
			line = line[:k]
		}
		size, _ := parseHexSize(bytes.TrimRight(line, " \t"), p.maxBody)
		pos += j + 1
		if size <= 0 {
			break
		}
		data := b[pos : pos+size]
		pos += size + 2
		chunks++
		switch chunks {
		case 1:
			first = data
			continue
		case 2:
			p.body = append(p.body, first...)
		}
		p.body = append(p.body, data...)
	}
	if chunks == 1 {
		return first
	}
	if chunks == 0 {
		return nil
	}
	return p.body
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
// the header block, or -1, and passes each header line to fr. lineEnd is
// the index of the request line's '\n'.
func headerEnd(b []byte, lineEnd int, fr *framing) int {
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
		fr.line(b[s : s+j])
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
