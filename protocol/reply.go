package protocol

import "github.com/halleypush/halley/engine"

// Answers shared by both APIs: JSON with CORS and no-store headers
// (C-03, C-06), or JSONP around the same body when the request named a
// valid callback.

// Standard header blocks. API answers carry CORS and no-store (C-06).
var (
	hdrAPI       = []byte("Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n")
	hdrPreflight = []byte("Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n" +
		"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n" +
		"Access-Control-Allow-Headers: Content-Type, Authorization, Last-Event-ID\r\n" +
		"Access-Control-Max-Age: 86400\r\n")
	hdrSSE = []byte("Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\n")
)

const (
	ctJSON = "application/json; charset=utf-8"
	ctJS   = "application/javascript; charset=utf-8"
	ctSSE  = "text/event-stream; charset=utf-8"
)

var (
	bodyOK      = []byte(`{"code":"ok"}`)
	bodyHealthy = []byte(`{"code":"ok"}`)
)

// replyError answers e as JSON, or as JSONP when callback is a valid
// callback name (C-06: JSONP applies to error answers too).
func (a *API) replyError(c engine.Conn, callback []byte, e *apiError) {
	a.stats.errors.Add(1)
	if callback == nil {
		c.Reply(e.status, ctJSON, hdrAPI, e.body)
		return
	}
	ls := a.state[c.Loop()]
	ls.jsonp = appendJSONP(ls.jsonp[:0], callback, e.body)
	c.Reply(e.status, ctJS, hdrAPI, ls.jsonp)
}

// reply answers a JSON body with status 200, or JSONP around it.
func (a *API) reply(c engine.Conn, callback, body []byte) {
	if callback == nil {
		c.Reply(200, ctJSON, hdrAPI, body)
		return
	}
	ls := a.state[c.Loop()]
	ls.jsonp = appendJSONP(ls.jsonp[:0], callback, body)
	c.Reply(200, ctJS, hdrAPI, ls.jsonp)
}

func appendJSONP(dst, callback, body []byte) []byte {
	dst = append(dst, callback...)
	dst = append(dst, '(')
	dst = append(dst, body...)
	return append(dst, ");"...)
}
