package engine

import (
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// dateCache keeps the Date header value of the current second, per loop.
type dateCache struct {
	sec int64
	buf []byte
}

func (d *dateCache) get() []byte {
	now := time.Now()
	if s := now.Unix(); s != d.sec || d.buf == nil {
		d.sec = s
		d.buf = now.UTC().AppendFormat(d.buf[:0], "Mon, 02 Jan 2006 15:04:05 GMT")
	}
	return d.buf
}

// appendHead appends a response head: status line, Content-Type (unless
// empty), Content-Length (when contentLength >= 0), Connection, Date, the
// preformatted extra header lines and the blank line.
func (lp *loop) appendHead(dst []byte, status int, contentType string, contentLength int, keepAlive bool, extra []byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, fasthttp.StatusMessage(status)...)
	dst = append(dst, "\r\n"...)
	if contentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, contentType...)
		dst = append(dst, "\r\n"...)
	}
	// RFC 9110 8.6: no Content-Length on 1xx and 204.
	if contentLength >= 0 && status >= 200 && status != 204 {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(contentLength), 10)
		dst = append(dst, "\r\n"...)
	}
	if keepAlive {
		dst = append(dst, "Connection: keep-alive\r\n"...)
	} else {
		dst = append(dst, "Connection: close\r\n"...)
	}
	dst = append(dst, "Date: "...)
	dst = append(dst, lp.date.get()...)
	dst = append(dst, "\r\n"...)
	dst = append(dst, extra...)
	return append(dst, "\r\n"...)
}

var continueResponse = []byte("HTTP/1.1 100 Continue\r\n\r\n")
