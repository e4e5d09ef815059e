package protocol

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// The demo page and the endpoints it writes and pushes through (SPEC
// No page may carry an api_secret or a private api_key, so the
// page holds only the demo account's username and public cf_api_key, and
// the server performs its writes and pushes with the account's own
// credentials:
//
//	GET  /                 the page (rendered per request: it follows rotations)
//	POST /demo/write       channel, msg        → as /write (EZ-W-05)
//	POST /demo/push        identifier, text, secret → as a push (CF-P-05)
//	GET  /demo/securekey   identifiers (a LIST) → {"code":"ok","secureKey":"…"}
//
// Whoever reaches these writes and pushes as the demo account, so they
// are served only to a loopback client (Request.ClientIP, C-07) unless
// Demo.Open (`halley serve --demo`), and only while the account exists.
// Every other account is out of their reach: none of them takes a user
// name or a key.

// Demo configures the demo page and its endpoints.
type Demo struct {
	// Account names the demo account ("demo": the one `halley serve`
	// creates on an empty data directory). Empty: no demo page and no
	// demo endpoints. They exist while an account of this name does.
	Account string
	// Open serves them to every client (`halley serve --demo`). By
	// default only a loopback client is served.
	Open bool
	// Page renders the demo page from the account's username and public
	// cf_api_key, the only credentials a page may carry. Nil: no page.
	Page func(username, cfAPIKey string) []byte
}

const (
	demoPagePath  = "/"
	demoWritePath = "/demo/write"
	demoPushPath  = "/demo/push"
	demoKeyPath   = "/demo/securekey"
)

func isDemoPath(p []byte) bool {
	switch string(p) {
	case demoPagePath, demoWritePath, demoPushPath, demoKeyPath:
		return true
	}
	return false
}

// hdrDemo heads the secureKey answer: no CORS header, so only a page of
// the same origin may read it, even if a cross-origin request got one.
// (Write and push answers, and errors, are those of /write and pushes:
// a tick, a push_id or a refusal, which any page may read.)
var hdrDemo = []byte("Cache-Control: no-store\r\n")

// serveDemo answers the demo page and endpoints. Checks run 404 (no demo
// account), 405, 403 (demoRefusal), then the parameters' 400 and 413:
// the 403 plays the part /write's 401 plays, so a refused client learns
// nothing about its parameters.
func (a *API) serveDemo(ls *loopState, c engine.Conn, r *engine.Request) {
	acct, ok := a.store.AccountByName([]byte(a.opts.Demo.Account))
	path := string(r.Path)
	if !ok || path == demoPagePath && a.opts.Demo.Page == nil {
		a.replyError(c, nil, errNotFound)
		return
	}
	method := string(r.Method)
	switch {
	case path == demoPagePath && (method == "GET" || method == "HEAD"):
	case path == demoKeyPath && method == "GET":
	case (path == demoWritePath || path == demoPushPath) && method == "POST":
	default:
		a.replyError(c, nil, errMethod)
		return
	}
	if e := a.demoRefusal(r); e != nil {
		a.replyError(c, nil, e)
		return
	}
	if path == demoPagePath {
		p := newPage(Page{ContentType: "text/html; charset=utf-8", Body: a.opts.Demo.Page(acct.Username, acct.CFAPIKey)})
		a.servePage(c, r, &p)
		return
	}
	if a.draining.Load() {
		a.replyError(c, nil, errShuttingDown)
		return
	}
	f := &ls.form
	f.parse(r.Query, r.Body, method == "POST" && isFormBody(r))
	if f.err != nil {
		a.replyError(c, nil, f.err)
		return
	}
	switch path {
	case demoWritePath:
		a.serveDemoWrite(ls, c, acct)
	case demoPushPath:
		a.serveDemoPush(ls, c, acct)
	case demoKeyPath:
		a.serveDemoSecureKey(ls, c, acct)
	}
}

// demoRefusal says why r may not use the demo page and endpoints, or
// returns nil. Beyond the client address it refuses what a browser on
// the same machine could be made to send for another site: a request
// forwarded by a proxy the server does not trust (a loopback peer, but
// not the client), a Host that is not a loopback name (DNS rebinding),
// an Origin that is not the page's own (cross-site request forgery).
func (a *API) demoRefusal(r *engine.Request) *apiError {
	if a.opts.Demo.Open {
		return nil
	}
	client := r.ClientIP.Unmap()
	if !client.IsLoopback() {
		return errDemoNotLoopback
	}
	h := r.Header
	if h == nil {
		return nil
	}
	// Forwarding headers from a peer that is not a trusted proxy: a
	// loopback proxy left out of --trusted-proxy, forwarding for
	// someone who is not on this machine.
	if !r.ViaTrustedProxy && (len(h.Peek("X-Forwarded-For")) > 0 || len(h.Peek("Forwarded")) > 0 || len(h.Peek("X-Real-IP")) > 0) {
		return errDemoForwarded
	}
	host := h.Peek("Host")
	if len(host) > 0 && !loopbackHost(string(host)) {
		return errDemoHost
	}
	if origin := h.Peek("Origin"); len(origin) > 0 && !sameOrigin(origin, host) {
		return errDemoOrigin
	}
	return nil
}

// loopbackHost: a Host header naming this machine's loopback, "localhost"
// (and *.localhost, RFC 6761) or a loopback address, with or without a
// port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// sameOrigin: origin is the page's own, http:// or https:// and the Host.
func sameOrigin(origin, host []byte) bool {
	for _, scheme := range []string{"http://", "https://"} {
		if len(origin) == len(scheme)+len(host) && bytes.EqualFold(origin[:len(scheme)], []byte(scheme)) &&
			bytes.EqualFold(origin[len(scheme):], host) {
			return true
		}
	}
	return false
}

// serveDemoWrite writes msg to the demo account's channel as /write does
// with the account's api_key: the same store path, durability and answer.
func (a *API) serveDemoWrite(ls *loopState, c engine.Conn, acct persist.Account) {
	f := &ls.form
	channel, _ := f.get("channel")
	if len(channel) == 0 {
		a.replyError(c, nil, errDemoMissingChannel)
		return
	}
	msg, ok := f.get("msg")
	if !ok {
		a.replyError(c, nil, errDemoMissingMsg)
		return
	}
	ls.out = append(append(append(ls.out[:0], acct.Username...), '-'), channel...)
	if _, _, ok := splitQName(ls.out); !ok {
		a.replyError(c, nil, errDemoBadChannel)
		return
	}
	if len(msg) > maxMsg {
		a.replyError(c, nil, errMsgTooLarge)
		return
	}
	a.store.EZWriteTo(newWriteOp(a, c, acct.ID, ls.out, nil, false, msg, false))
}

// serveDemoPush pushes text to the demo account's identifier as a push
// signed with its api_secret would be (CF-P-03): the same store path,
// digest recorded for CF-P-09, durability and answer.
func (a *API) serveDemoPush(ls *loopState, c engine.Conn, acct persist.Account) {
	f := &ls.form
	ident, ok := f.get("identifier")
	if !ok {
		a.replyError(c, nil, errMissingIdentifier)
		return
	}
	if !validIdentifier(ident) {
		a.replyError(c, nil, errBadIdentifier)
		return
	}
	secretFlag, _ := f.get("secret")
	if string(secretFlag) != "0" && string(secretFlag) != "1" {
		a.replyError(c, nil, errBadSecret)
		return
	}
	text, ok := f.get("text")
	if !ok {
		a.replyError(c, nil, errMissingText)
		return
	}
	if len(text) > maxCFText {
		a.replyError(c, nil, errTextTooLarge)
		return
	}
	ls.sig = pushSignature(ls.sig[:0], acct.CFAPIKey, acct.APISecret, ident, text)
	p := persist.CFPush{Secret: string(secretFlag) == "1", AccountID: acct.ID, Secure: md5.Sum(ls.sig), HasSecure: true}
	a.store.CFPushTo(newPushOp(a, c, p, acct.Username, ident, text, nil))
}

// serveDemoSecureKey answers the secureKey (CF-L-06) of an identifier
// list of the demo account, so the page can receive its secret pushes.
// A secureKey is not the secret: md5 cannot be turned back into it, and
// it admits a listener to the secret pushes of that one list, nothing
// more. That capability is fine to hand out for the demo account only,
// whose every client may push secret pushes through /demo/push anyway;
// for a real account it would publish what its secret protects.
func (a *API) serveDemoSecureKey(ls *loopState, c engine.Conn, acct persist.Account) {
	f := &ls.form
	list, _ := f.get("identifiers")
	items, e := parseList(ls.items, list, a.opts.MaxIdentifiers)
	ls.items = items
	if e != nil {
		a.replyError(c, nil, e)
		return
	}
	ls.sig = secureKeySignature(ls.sig[:0], acct.CFAPIKey, acct.APISecret, items)
	sum := md5.Sum(ls.sig)
	ls.out = append(ls.out[:0], `{"code":"ok","secureKey":"`...)
	ls.out = hex.AppendEncode(ls.out, sum[:])
	ls.out = append(ls.out, `"}`...)
	c.Reply(200, ctJSON, hdrDemo, ls.out)
}
