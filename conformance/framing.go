package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// C-03's framing rules: request bodies are delimited as RFC 9112 does, and
// a request whose framing is ambiguous is a JSON 400 and the end of the
// connection, so that no body can be read as a second request
// (smuggling). Every refused request below carries, where a lenient
// server would read it, a write of its own and a smuggled second write;
// neither may reach the channel, and nothing may answer the smuggled one.

// pushPath is the path of a Cometify push to identifier x for a.
func pushPath(a Account, x string) string { return "/" + a.CFKey + "/push/" + x }

// chunkedBody encodes body in chunks of size bytes, then the last chunk.
func chunkedBody(body string, size int) string {
	var b strings.Builder
	for i := 0; i < len(body); i += size {
		part := body[i:min(i+size, len(body))]
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(part), part)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func checkFraming(t *caseT) {
	key := t.cfg.Account.Key
	bad, good := t.qname(), t.qname()
	write := func(q, msg, tick string) string {
		return form("api_key", key, "qname", q, "msg", msg, "tick", tick)
	}
	smuggled := t.request("POST", "/write", write(bad, "smuggled", "smuggled"))
	body := write(bad, "framed", "framed")
	chunks := chunkedBody(body, 16)
	head := func(version string, headers ...string) string {
		return "POST /write " + version + "\r\nHost: " + t.cfg.host() + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
			strings.Join(headers, "\r\n") + "\r\n\r\n"
	}
	cl := func(n int) string { return "Content-Length: " + strconv.Itoa(n) }
	te := func(v string) string { return "Transfer-Encoding: " + v }
	refused := []struct{ raw, what string }{
		{head("HTTP/1.1", te("identity")) + smuggled, "Transfer-Encoding: identity without Content-Length, a request as body"},
		{head("HTTP/1.1", te("identity"), cl(len(body))) + body + smuggled, "Transfer-Encoding: identity with Content-Length"},
		{head("HTTP/1.1", te("gzip")) + chunks + smuggled, "Transfer-Encoding: gzip"},
		{head("HTTP/1.1", te("gzip, chunked")) + chunks + smuggled, "Transfer-Encoding: gzip, chunked"},
		{head("HTTP/1.1", te("chunked, chunked")) + chunks + smuggled, "Transfer-Encoding: chunked, chunked"},
		{head("HTTP/1.1", te("chunked"), te("chunked")) + chunks + smuggled, "two Transfer-Encoding: chunked lines"},
		{head("HTTP/1.1", te("identity"), te("chunked")) + chunks + smuggled, "Transfer-Encoding lines identity and chunked"},
		{head("HTTP/1.1", te("xchunked")) + chunks + smuggled, "Transfer-Encoding: xchunked"},
		{head("HTTP/1.1", te("chunked"), cl(len(chunks))) + chunks + smuggled, "Transfer-Encoding: chunked and Content-Length"},
		{head("HTTP/1.1", cl(len(body)), te("chunked")) + chunks + smuggled, "Content-Length, then Transfer-Encoding: chunked"},
		{head("HTTP/1.0", te("chunked")) + chunks + smuggled, "Transfer-Encoding: chunked in an HTTP/1.0 request"},
		{head("HTTP/1.1", cl(len(body)), cl(len(body)+len(smuggled))) + body + smuggled, "two Content-Length lines that differ"},
		{head("HTTP/1.1", "Content-Length: "+strconv.Itoa(len(body))+", "+strconv.Itoa(len(body)+len(smuggled))) + body + smuggled, "Content-Length: N, M with N ≠ M"},
		{head("HTTP/1.1", te("chunked")) + strings.Replace(chunks, "\r\n", "\n", 1) + smuggled, "a bare LF after the first chunk-size line"},
		{head("HTTP/1.1", te("chunked")) + fmt.Sprintf("%x\r\n%s\n0\r\n\r\n", len(body), body) + smuggled, "a bare LF after chunk data"},
		{head("HTTP/1.1", te("chunked")) + fmt.Sprintf("%x\r\n%s\r\n0\r\nX-Trailer: 1\n\r\n", len(body), body) + smuggled, "a bare LF after a trailer field"},
		{head("HTTP/1.1", te("chunked")) + fmt.Sprintf("%x\r\n%s\r\n0\r\n\n", len(body), body) + smuggled, "a bare LF ending the trailer section"},
		{head("HTTP/1.1", te("chunked")) + fmt.Sprintf("%x\n%s\n0\n\n", len(body), body) + smuggled, "chunk framing with bare LFs only"},
	}
	for _, r := range refused {
		w := t.dial()
		_ = w.trySend(r.raw)
		resp, err := w.readErr("POST", defaultWait)
		if err != nil {
			t.Fatalf("%s: want a JSON 400, got %v", r.what, err)
		}
		t.wantError(resp, 400, r.what)
		w.expectClosed(3*time.Second, "after the 400 to "+r.what+" (a second answer means the body was read as a request)")
	}

	// Accepted: chunked in any case, with extensions and trailers.
	accepted := []struct{ raw, what, msg, tick string }{
		{head("HTTP/1.1", te("Chunked")) + chunkedBody(write(good, "Chunked", "g1"), 7), "Transfer-Encoding: Chunked", "Chunked", "g1"},
		{head("HTTP/1.1", te("CHUNKED")) + chunkedBody(write(good, "CHUNKED", "g2"), 1000), "Transfer-Encoding: CHUNKED", "CHUNKED", "g2"},
		{head("HTTP/1.1", te("chunked")) + withExtensions(write(good, "ext", "g3")), "chunk extensions and a trailer field", "ext", "g3"},
	}
	var msgs, ticks []string
	for _, a := range accepted {
		w := t.dial()
		w.send(a.raw)
		if m := t.wantOK(w.read(), a.what); m["tick"] != a.tick {
			t.Fatalf("%s: answered tick %v, want %s", a.what, m["tick"], a.tick)
		}
		w.close()
		msgs, ticks = append(msgs, a.msg), append(ticks, a.tick)
	}
	got, _ := t.readAll(good, "")
	if err := sameItems(got, msgs, ticks); err != nil {
		t.Fatalf("the writes sent with accepted chunked framings: %v", err)
	}
	// Nothing of the refused requests reached their channel, while a
	// write done right does.
	if got, _ := t.readAll(bad, ""); len(got) != 0 {
		t.Fatalf("a refused request's write or its smuggled second request reached the channel: %v", got)
	}
	tick := t.writeMsg(bad, "after", "")
	if got, _ := t.readAll(bad, ""); len(got) != 1 || got[0].tick != tick {
		t.Fatalf("a write after the refused requests: read back %v", got)
	}
	framingTrickle(t)
}

// withExtensions encodes body in two chunks with chunk extensions and ends
// with a trailer field.
func withExtensions(body string) string {
	h := len(body) / 2
	return fmt.Sprintf("%x;name=value\r\n%s\r\n%x;quoted=\"a b\"\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n", h, body[:h], len(body)-h, body[h:])
}

// framingTrickle sends a Cometify push of nearly --max-body-bytes as a
// chunked body in 600 writes: it must be answered correctly, and another
// connection is served while it trickles in (a server that decodes the
// body again from the start on every segment stalls its loop).
func framingTrickle(t *caseT) {
	const segments = 600
	a := t.cfg.Account
	x := ident()
	n := min(65536, (t.cfg.MaxBodyBytes-1024)/3)
	if n < segments {
		t.Notef("a chunked body in %d segments: --max-body-bytes %d is too small", segments, t.cfg.MaxBodyBytes)
		return
	}
	plain := strings.Repeat("a", n)
	body := "identifier=" + x + "&secret=0&secure=" + pushSecure(a.CFKey, a.Secret, x, plain) + "&text=" + strings.Repeat("%61", n)
	size := (len(body) + segments - 1) / segments
	w := t.dial()
	w.send(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n", pushPath(a, x), t.cfg.host()))
	done := make(chan struct{})
	var answeredDuring int
	t.parallel(func() {
		defer close(done)
		for i := 0; i < len(body); i += size {
			part := body[i:min(i+size, len(body))]
			w.send(fmt.Sprintf("%x\r\n%s\r\n", len(part), part))
			time.Sleep(time.Millisecond)
		}
		w.send("0\r\n\r\n")
	}, func() {
		o := t.dial()
		for {
			select {
			case <-done:
				return
			default:
			}
			o.send(t.request("GET", "/healthz", ""))
			r, err := o.readErr("GET", defaultWait)
			if err != nil {
				t.Fatalf("GET /healthz on another connection while a chunked body trickles in: %v", err)
			}
			t.wantOK(r, "GET /healthz on another connection while a chunked body trickles in")
			select {
			case <-done:
			default:
				answeredDuring++
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	id := t.pushAnswer(w.read(), fmt.Sprintf("a %d-byte push body in %d chunked segments", len(body), segments), "")
	if answeredDuring == 0 {
		t.Fatalf("no /healthz on another connection was answered while a chunked body trickled in over %d writes", segments)
	}
	p := t.cfPoll(a, idList(x, 0), 0)
	if len(p.items) != 1 || p.items[0].kind != cfPush || p.items[0].id != id || p.items[0].data != plain {
		t.Fatalf("replay of the push sent in %d segments: want push %d with %d bytes of 'a', got %v", segments, id, n, p.items)
	}
	if p := t.cfPoll(a, idList(x+"a", 0), 0); len(p.items) != 0 {
		t.Fatalf("the identifier %sa, next to the one pushed to, replays %v", x, p.items)
	}
}
