package conformance

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Cometify side of the suite: signing pushes and listeners, pushing,
// and identifiers lists (LIST in docs/spec.md §5).

// md5hex is the lowercase hex MD5 both Cometify signatures are built of.
func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// pushSecure is CF-P-03's `secure`: md5hex(cfKey + md5hex(apiSecret) +
// identifier + text), identifier as sent in the form; cfKey is the
// account's public cf_api_key.
func pushSecure(key, secret, identifier, text string) string {
	return md5hex(key + md5hex(secret) + identifier + text)
}

// listenKey is CF-L-06's secureKey: md5hex(cfKey + apiSecret +
// md5hex(names joined by "," as sent, without ids)).
func listenKey(key, secret string, names ...string) string {
	return md5hex(key + secret + md5hex(strings.Join(names, ",")))
}

// ident is a fresh identifier (lowercase, 14 chars) no other case uses.
func ident() string { return "cf" + randHex(12) }

// pushForm is a correctly signed push body for account a. pushID "" leaves
// push_id out.
func pushForm(a Account, identifier, text, secret, pushID string) string {
	kv := []string{"identifier", identifier, "secret", secret, "text", text, "secure", pushSecure(a.CFKey, a.Secret, identifier, text)}
	if pushID != "" {
		kv = append(kv, "push_id", pushID)
	}
	return form(kv...)
}

// pushTo sends POST /{key}/push/{pathIdent} with body and returns the raw
// answer; key is what the path carries (a cf_api_key unless the case
// checks another).
func (t *caseT) pushTo(key, pathIdent, body string) *reply {
	return t.do("POST", "/"+key+"/push/"+pathIdent, body)
}

// pushAs pushes text to identifier (path and form alike) for account a
// and returns the push_id the server answered; secret is "0" or "1",
// pushID "" lets the server assign one.
func (t *caseT) pushAs(a Account, identifier, text, secret, pushID string) int64 {
	r := t.pushTo(a.CFKey, identifier, pushForm(a, identifier, text, secret, pushID))
	return t.pushAnswer(r, fmt.Sprintf("push %q to %s", clip([]byte(text)), identifier), pushID)
}

// push is pushAs with the main account, secret=0 and an assigned id.
func (t *caseT) push(identifier, text string) int64 {
	return t.pushAs(t.cfg.Account, identifier, text, "0", "")
}

// pushID is push with a given push_id.
func (t *caseT) pushID(identifier, text string, id int64) {
	t.pushAs(t.cfg.Account, identifier, text, "0", strconv.FormatInt(id, 10))
}

// pushAnswer checks a CF-P-05 answer and returns its push_id; a given
// pushID must come back unchanged.
func (t *caseT) pushAnswer(r *reply, ctx, pushID string) int64 {
	m := t.wantOK(r, ctx)
	n, ok := m["push_id"].(json.Number)
	if !ok {
		t.Fatalf(`%s: want "push_id":<int>, got %s`, ctx, r)
	}
	id, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || id < 1 {
		t.Fatalf(`%s: "push_id" %s is not an integer 1..2^63-1 (CF-P-04)`, ctx, n)
	}
	if pushID != "" && n.String() != pushID {
		t.Fatalf("%s with push_id %s: answered push_id %s", ctx, pushID, n)
	}
	return id
}

// cfPath builds /{key}/{endpoint}?identifiers=LIST&… ; kv pairs with an
// empty name are left out, so callers can pass optional parameters.
func cfPath(key, endpoint, list string, kv ...string) string {
	all := []string{"identifiers", list}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] != "" {
			all = append(all, kv[i], kv[i+1])
		}
	}
	return "/" + key + "/" + endpoint + "?" + form(all...)
}

// idList is a LIST in id form: name:id pairs joined by commas.
func idList(pairs ...any) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%v:%v", pairs[i], pairs[i+1])
	}
	return b.String()
}

// listenerPath is the path of a listener on via (the transport constants
// of ezstream.go) for account a, under its public cf_api_key.
func listenerPath(a Account, via, list string, kv ...string) string {
	endpoint := map[string]string{viaWS: "listen", viaSSE: "sse", viaPoll: "poll"}[via]
	return cfPath(a.CFKey, endpoint, list, kv...)
}

// cfItem is one thing a Cometify listener received: a resume point,
// a gap signal for one identifier, or a push.
type cfItem struct {
	kind  string // cfSince, cfGap or cfPush
	since string // cfSince: the LIST in id form
	ident string // cfGap, cfPush
	id    int64  // cfPush
	data  string // cfPush
}

const (
	cfSince = "since"
	cfGap   = "gap"
	cfPush  = "push"
)

// pushed is the push a listener should receive.
func pushed(identifier string, id int64, data string) cfItem {
	return cfItem{kind: cfPush, ident: identifier, id: id, data: data}
}

func (i cfItem) String() string {
	switch i.kind {
	case cfSince:
		return fmt.Sprintf("<since %s>", i.since)
	case cfGap:
		return fmt.Sprintf("<gap %s>", i.ident)
	}
	return fmt.Sprintf("{%s #%d %q}", i.ident, i.id, clip([]byte(i.data)))
}

// decodeCFObject reads one WebSocket frame or SSE data (a JSON object) as
// a resume point, a gap signal, a push, or (ok false) an object this suite
// does not know and a client ignores: one without a "data" key.
func (t *caseT) decodeCFObject(ctx string, p []byte) (cfItem, bool) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || dec.More() {
		t.Fatalf("%s: want one JSON object, got %q", ctx, clip(p))
	}
	if _, isPush := m["data"]; isPush {
		return t.decodeCFPush(ctx, m, p), true
	}
	if s, has := m["since"]; has {
		str, ok := s.(string)
		if !ok {
			t.Fatalf(`%s: "since" must be a string: %q`, ctx, clip(p))
		}
		return cfItem{kind: cfSince, since: str}, true
	}
	if g, has := m["gap"]; has {
		name, ok := m["identifier"].(string)
		if g != true || !ok {
			t.Fatalf(`%s: a gap signal is {"gap":true,"identifier":"<name>"}, got %q`, ctx, clip(p))
		}
		return cfItem{kind: cfGap, ident: name}, true
	}
	return cfItem{}, false
}

// decodeCFPush checks the CF-L-01 push object.
func (t *caseT) decodeCFPush(ctx string, m map[string]any, raw []byte) cfItem {
	name, ok1 := m["identifier"].(string)
	n, ok2 := m["id"].(json.Number)
	data, ok3 := m["data"].(string)
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf(`%s: a push is {"identifier":"<name>","id":<int>,"data":"<text>"}, got %q`, ctx, clip(raw))
	}
	id, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		t.Fatalf(`%s: push "id" %s is not an integer`, ctx, n)
	}
	return cfItem{kind: cfPush, ident: name, id: id, data: data}
}

// parseIDList splits an id-form LIST into names and ids, in order.
func parseIDList(s string) (names []string, ids []int64, err error) {
	for _, part := range strings.Split(s, ",") {
		name, id, ok := strings.Cut(part, ":")
		n, perr := strconv.ParseInt(id, 10, 64)
		if !ok || name == "" || perr != nil || n < 0 {
			return nil, nil, fmt.Errorf("%q is not a LIST in id form (name:id,…)", s)
		}
		names, ids = append(names, name), append(ids, n)
	}
	return names, ids, nil
}

// advance returns the id-form LIST since with name's id set to id.
func advance(since, name string, id int64) string {
	names, ids, err := parseIDList(since)
	if err != nil {
		return since
	}
	for i := range names {
		if names[i] == name {
			ids[i] = id
		}
	}
	pairs := make([]any, 0, 2*len(names))
	for i := range names {
		pairs = append(pairs, names[i], ids[i])
	}
	return idList(pairs...)
}

// cfPollAnswer is a decoded Cometify poll answer (CF-L-02).
type cfPollAnswer struct {
	raw    *reply
	fields map[string]any
	items  []cfItem // one cfGap per gap identifier, then the pushes
	since  string
	gap    bool
	took   time.Duration
}

// decodeCFPoll checks a 200 poll answer and decodes it.
func (t *caseT) decodeCFPoll(r *reply, took time.Duration, ctx string) cfPollAnswer {
	m := t.wantOK(r, ctx)
	a := cfPollAnswer{raw: r, fields: m, took: took}
	for k := range m {
		switch k {
		case "code", "pushes", "since", "gap", "gap_identifiers", "retry_ms":
		default:
			t.Fatalf("%s: unexpected field %q in %s", ctx, k, r)
		}
	}
	since, ok := m["since"].(string)
	if !ok {
		t.Fatalf(`%s: want "since":"<LIST in id form>", got %s`, ctx, r)
	}
	if _, _, err := parseIDList(since); err != nil {
		t.Fatalf(`%s: "since": %v`, ctx, err)
	}
	a.since = since
	if g, has := m["gap"]; has {
		if g != true && g != false {
			t.Fatalf(`%s: "gap" must be a boolean: %s`, ctx, r)
		}
		a.gap = g == true
	}
	names, has := m["gap_identifiers"].([]any)
	if a.gap != (has && len(names) > 0) {
		t.Fatalf(`%s: "gap":true goes with a non-empty "gap_identifiers" list and only with it: %s`, ctx, r)
	}
	for _, n := range names {
		s, ok := n.(string)
		if !ok {
			t.Fatalf(`%s: "gap_identifiers" must hold strings: %s`, ctx, r)
		}
		a.items = append(a.items, cfItem{kind: cfGap, ident: s})
	}
	list, ok := m["pushes"].([]any)
	if !ok {
		t.Fatalf(`%s: want a "pushes" array, got %s`, ctx, r)
	}
	for _, e := range list {
		obj, ok := e.(map[string]any)
		if !ok {
			t.Fatalf(`%s: each push must be an object: %s`, ctx, r)
		}
		a.items = append(a.items, t.decodeCFPush(ctx, obj, r.body))
	}
	return a
}

// cfPoll sends one Cometify poll and decodes a 200 answer or fails.
func (t *caseT) cfPoll(a Account, list string, timeout int, kv ...string) cfPollAnswer {
	start := time.Now()
	wait := defaultWait + time.Duration(max(timeout, 0))*time.Second
	if timeout < 0 {
		wait += 30 * time.Second
	}
	var tv []string
	if timeout >= 0 {
		tv = []string{"timeout", strconv.Itoa(timeout)}
	}
	path := listenerPath(a, viaPoll, list, append(tv, kv...)...)
	r := t.doWithin(wait, "GET", path, "")
	return t.decodeCFPoll(r, time.Since(start), "poll "+list)
}

// pushSignature is CF-P-10's signature: hex(HMAC-SHA256(api_secret,
// cf_api_key "\n" identifier "\n" secret "\n" push_id "\n" ts "\n" nonce
// "\n" text)), push_id empty when absent.
func pushSignature(cfKey, apiSecret, identifier, secret, pushID, ts, nonce, text string) string {
	m := hmac.New(sha256.New, []byte(apiSecret))
	m.Write([]byte(strings.Join([]string{cfKey, identifier, secret, pushID, ts, nonce, text}, "\n")))
	return hex.EncodeToString(m.Sum(nil))
}

// signedPush is a CF-P-10 push: its form fields, and the signature sent
// with them (sign fills it from the fields).
type signedPush struct {
	identifier, secret, text, pushID, ts, nonce string
	signature                                   string
	// secure is an md5 `secure` sent beside the signature; "" sends none.
	secure string
}

// newSigned is a signed secret=0 push of text to identifier, stamped now
// with a fresh nonce.
func newSigned(a Account, identifier, text string) signedPush {
	p := signedPush{identifier: identifier, secret: "0", text: text, ts: strconv.FormatInt(time.Now().Unix(), 10), nonce: "n" + randHex(20)}
	return p.sign(a)
}

// sign returns p with the signature of its own fields under a's
// cf_api_key and api_secret.
func (p signedPush) sign(a Account) signedPush {
	p.signature = pushSignature(a.CFKey, a.Secret, p.identifier, p.secret, p.pushID, p.ts, p.nonce, p.text)
	return p
}

func (p signedPush) body() string {
	kv := []string{"identifier", p.identifier, "secret", p.secret, "text", p.text, "ts", p.ts, "nonce", p.nonce, "signature", p.signature}
	if p.pushID != "" {
		kv = append(kv, "push_id", p.pushID)
	}
	if p.secure != "" {
		kv = append(kv, "secure", p.secure)
	}
	return form(kv...)
}

// sendSigned sends p to its identifier's path for account a.
func (t *caseT) sendSigned(a Account, p signedPush) *reply {
	return t.pushTo(a.CFKey, p.identifier, p.body())
}

// cfNeighbours are the identifiers next to x: a prefix, an extension (of
// the main account), and the second account's identifier of the same name
// (when there is one).
func (t *caseT) cfNeighbours(x string) (names []string, accts []Account) {
	a := t.cfg.Account
	names, accts = []string{x[:len(x)-1], x + "x"}, []Account{a, a}
	if a2 := t.cfg.Account2; a2.CFKey != "" && a2.Secret != "" {
		names, accts = append(names, x), append(accts, a2)
	} else {
		t.Notef("another account's identifier of the same name gets nothing (pass --user2/--key2/--cf-key2/--secret2)")
	}
	return names, accts
}

// watchCF pushes once to each neighbour of each x (so that a replay of x
// that strays into a neighbour shows it), then opens a plain listener on
// each neighbour on every transport, from a client IP of its own: none may
// get anything while the case pushes to x.
func (t *caseT) watchCF(xs ...string) *watch {
	w := &watch{t: t}
	src, _ := t.freshOrSame()
	for _, x := range xs {
		names, accts := t.cfNeighbours(x)
		for i, n := range names {
			a := accts[i]
			t.pushAs(a, n, "neighbour of "+x, "0", "")
			for _, via := range ezTransports {
				h := src.keepCF(via, a, n, "")
				h.what += " (a neighbour of " + x + ")"
				w.list = append(w.list, h)
			}
		}
	}
	return w
}
