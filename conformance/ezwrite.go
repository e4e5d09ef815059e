package conformance

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ezWriteCases are the EZComet write rules.
func ezWriteCases() []ruleCase {
	return []ruleCase{
		{rule: "EZ-W-01", what: "api_key required: missing, empty, unknown or the public cf_api_key → 401, GET and POST", run: checkWriteKey},
		{rule: "EZ-W-02", what: "qname: required, ≤64 bytes, own username, channel of [A-Za-z0-9._~-]", run: checkWriteQname},
		{rule: "EZ-W-03", what: "msg required unless flush=1, ≤4096 bytes (413), empty msg valid", run: checkWriteMsg},
		{rule: "EZ-W-04", what: "tick: 1..64 printable ASCII, generated as a lowercase UUID when absent", run: checkWriteTick},
		{rule: "EZ-W-05", what: `success answer is exactly {"code":"ok","tick":…}`, run: checkWriteAnswer},
		{rule: "EZ-W-06", what: "flush=1 empties the channel and answers {\"code\":\"ok\"}; other flush values write", run: checkWriteFlush},
		{rule: "EZ-W-07", what: "same tick: same msg idempotent, different msg 409, free again after flush", run: checkWriteIdempotent},
		{rule: "EZ-W-08", what: "messages of a channel are totally ordered under concurrent writers", run: checkWriteOrder},
		{rule: "EZ-W-09", what: "retention: newest --ez-max-queue kept, older dropped; --ez-max-age", run: checkWriteRetention, timeout: 90 * time.Second},
	}
}

func checkWriteKey(t *caseT) {
	q := t.qname()
	for _, method := range []string{"GET", "POST"} {
		send := func(kv ...string) *reply {
			if method == "GET" {
				return t.do("GET", "/write?"+form(kv...), "")
			}
			return t.do("POST", "/write", form(kv...))
		}
		t.wantError(send("qname", q, "msg", "x"), 401, method+" without api_key")
		t.wantError(send("api_key", "", "qname", q, "msg", "x"), 401, method+" with an empty api_key")
		t.wantError(send("api_key", randHex(32), "qname", q, "msg", "x"), 401, method+" with an unknown api_key")
		t.wantError(send("api_key", strings.ToUpper(t.cfg.Account.Key), "qname", q, "msg", "x"), 401, method+" with the key in upper case")
		// The public key never writes, its own account's or another's.
		t.wantError(send("api_key", t.cfg.Account.CFKey, "qname", q, "msg", "x"), 401, method+" with the account's public cf_api_key")
		if a2 := t.cfg.Account2; a2.CFKey != "" {
			t.wantError(send("api_key", a2.CFKey, "qname", a2.User+"-"+randHex(6), "msg", "x"), 401, method+" with the second account's cf_api_key on its own channel")
		}
		t.wantOK(send("api_key", t.cfg.Account.Key, "qname", q, "msg", "x"), method+" with the key")
	}
}

func checkWriteQname(t *caseT) {
	key, user := t.cfg.Account.Key, t.cfg.Account.User
	w := func(qname string) *reply { return t.write("api_key", key, "qname", qname, "msg", "x") }
	t.wantError(t.write("api_key", key, "msg", "x"), 400, "missing qname")
	t.wantError(w(""), 400, "empty qname")
	t.wantError(w("zz"+randHex(10)+"-chan"), 403, "qname of a user that does not exist")
	if u2 := t.cfg.Account2.User; u2 != "" {
		t.wantError(w(u2+"-chan"), 403, "qname of the second account")
		t.wantError(t.write("api_key", t.cfg.Account2.Key, "qname", t.qname(), "msg", "x"), 403, "second account's key on the first account's qname")
	} else {
		t.Notef("another existing user's qname (pass --user2/--key2)")
	}
	for _, bad := range []string{user, user + "-", user + "-bad chan", user + "-a/b", user + "-a!b", user + "-ünï", user + "-a%b"} {
		t.wantError(w(bad), 400, fmt.Sprintf("qname %q", bad))
	}
	t.wantOK(w(user+"-a.b_c~d-E9"+randHex(4)), "qname with every allowed channel character")
	chanLen := 64 - len(user) - 1
	if chanLen < 1 {
		t.Fatalf("username %q leaves no room for a channel in 64 bytes", user)
	}
	ch := randHex(min(chanLen, 12))
	exact := user + "-" + ch + strings.Repeat("x", chanLen-len(ch))
	t.wantOK(w(exact), "qname of exactly 64 bytes")
	t.wantError(w(exact+"x"), 400, "qname of 65 bytes")
}

func checkWriteMsg(t *caseT) {
	key, q := t.cfg.Account.Key, t.qname()
	w := t.watchEZ(q)
	t.wantError(t.write("api_key", key, "qname", q), 400, "missing msg")
	t.wantError(t.write("api_key", key, "qname", q, "flush", "0"), 400, "missing msg with flush=0")
	t.wantOK(t.write("api_key", key, "qname", q, "flush", "1"), "flush=1 without msg")
	full := strings.Repeat("m", 4096)
	t.writeMsg(q, full, "w1")
	t.wantError(t.write("api_key", key, "qname", q, "msg", full+"m", "tick", "w2"), 413, "msg of 4097 bytes")
	wide := strings.Repeat("é", 2048) // 4096 bytes, 2048 characters
	t.writeMsg(q, wide, "w3")
	t.wantError(t.write("api_key", key, "qname", q, "msg", wide+"a"), 413, "msg of 2049 characters, 4097 bytes")
	t.writeMsg(q, "", "w4")
	got, _ := t.readAll(q, "")
	if err := sameItems(got, []string{full, wide, ""}, []string{"w1", "w3", "w4"}); err != nil {
		t.Fatalf("read back: %v", err)
	}
	w.quiet()
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func checkWriteTick(t *caseT) {
	key, q := t.cfg.Account.Key, t.qname()
	w := t.watchEZ(q)
	g1 := t.writeMsg(q, "gen1", "")
	g2 := t.writeMsg(q, "gen2", "")
	for _, g := range []string{g1, g2} {
		if !uuidRE.MatchString(g) {
			t.Fatalf("generated tick %q is not a lowercase canonical UUID", g)
		}
	}
	if g1 == g2 {
		t.Fatalf("two generated ticks are equal: %q", g1)
	}
	var printable strings.Builder
	for c := byte(0x21); c <= 0x7e && printable.Len() < 64; c++ {
		printable.WriteByte(c)
	}
	long := printable.String()[:63] + randHex(1)
	t.writeMsg(q, "long", long)
	t.writeMsg(q, "one", "!")
	for _, bad := range []struct{ tick, what string }{
		{"", "empty tick"},
		{long + "x", "65-byte tick"},
		{"a b", "tick with a space"},
		{"a\x7f", "tick with DEL"},
		{"a\tb", "tick with a tab"},
		{"é", "non-ASCII tick"},
	} {
		t.wantError(t.write("api_key", key, "qname", q, "msg", "x", "tick", bad.tick), 400, bad.what)
	}
	got, _ := t.readAll(q, "")
	if err := sameItems(got, []string{"gen1", "gen2", "long", "one"}, []string{g1, g2, long, "!"}); err != nil {
		t.Fatalf("read back: %v", err)
	}
	w.quiet()
}

func checkWriteAnswer(t *caseT) {
	q := t.qname()
	for _, r := range []*reply{
		t.write("api_key", t.cfg.Account.Key, "qname", q, "msg", "p", "tick", "a1"),
		t.do("GET", "/write?"+form("api_key", t.cfg.Account.Key, "qname", q, "msg", "g", "tick", "a2"), ""),
	} {
		m := t.wantOK(r, "write")
		if len(m) != 2 || (m["tick"] != "a1" && m["tick"] != "a2") {
			t.Fatalf(`want exactly {"code":"ok","tick":"<tick>"}, got %s`, r)
		}
	}
}

func checkWriteFlush(t *caseT) {
	key, q := t.cfg.Account.Key, t.qname()
	w := t.watchEZ(q)
	for i := range 3 {
		t.writeMsg(q, fmt.Sprint(i), fmt.Sprint("f", i))
	}
	r := t.write("api_key", key, "qname", q, "flush", "1", "msg", "ignored", "tick", "fx")
	if m := t.wantOK(r, "flush=1"); len(m) != 1 {
		t.Fatalf(`flush=1: want exactly {"code":"ok"}, got %s`, r)
	}
	if got, _ := t.readAll(q, ""); len(got) != 0 {
		t.Fatalf("after flush=1 the channel still holds %v", firstItems(got))
	}
	for _, v := range []string{"2", "0", "true", ""} {
		tick := "nf" + v
		m := t.wantOK(t.write("api_key", key, "qname", q, "flush", v, "msg", "kept"+v, "tick", tick), "flush="+v)
		if m["tick"] != tick {
			t.Fatalf("flush=%q must be a normal write answering tick %q, got %v", v, tick, m)
		}
	}
	got, _ := t.readAll(q, "")
	if err := sameItems(got, []string{"kept2", "kept0", "kepttrue", "kept"}, []string{"nf2", "nf0", "nftrue", "nf"}); err != nil {
		t.Fatalf("writes with flush≠1: %v", err)
	}
	t.flush(t.qname()) // flushing a never-written channel is fine
	w.quiet()
}

func checkWriteIdempotent(t *caseT) {
	key, q := t.cfg.Account.Key, t.qname()
	w := t.watchEZ(q)
	t.writeMsg(q, "same", "i1")
	t.writeMsg(q, "other", "i2")
	t.writeMsg(q, "same", "i1")
	t.wantError(t.write("api_key", key, "qname", q, "msg", "different", "tick", "i1"), 409, "same tick, different msg")
	t.wantError(t.write("api_key", key, "qname", q, "msg", "", "tick", "i2"), 409, "same tick, empty msg")
	got, _ := t.readAll(q, "")
	if err := sameItems(got, []string{"same", "other"}, []string{"i1", "i2"}); err != nil {
		t.Fatalf("after a repeated write: %v", err)
	}
	t.flush(q)
	t.writeMsg(q, "new", "i1")
	got, _ = t.readAll(q, "")
	if err := sameItems(got, []string{"new"}, []string{"i1"}); err != nil {
		t.Fatalf("a flushed tick must be usable again: %v", err)
	}
	w.quiet()
}

func checkWriteOrder(t *caseT) {
	q := t.qname()
	w := t.watchEZ(q)
	// Every message must stay retained until it is read back.
	writers := min(8, t.cfg.EZMaxQueue)
	each := min(25, t.cfg.EZMaxQueue/writers)
	// Two live readers must see the one order the queue keeps.
	var streams []*ezStream
	for _, via := range []string{viaWS, viaSSE} {
		streams = append(streams, t.openEZ(via, q, "", ""))
	}
	var fns []func()
	for wi := range writers {
		fns = append(fns, func() {
			w := t.dial()
			defer w.close()
			for j := range each {
				tick := fmt.Sprintf("w%d-%d", wi, j)
				w.send(t.request("POST", "/write", form("api_key", t.cfg.Account.Key, "qname", q, "msg", tick, "tick", tick)))
				if m := t.wantOK(w.read(), "concurrent write"); m["tick"] != tick {
					t.Fatalf("concurrent write %s answered %v", tick, m["tick"])
				}
			}
		})
	}
	t.parallel(fns...)
	got, _ := t.readAll(q, "")
	if len(got) != writers*each {
		t.Fatalf("wrote %d messages, read back %d", writers*each, len(got))
	}
	next := make([]int, writers)
	var msgs, ticks []string
	for _, it := range got {
		var wi, j int
		if _, err := fmt.Sscanf(it.tick, "w%d-%d", &wi, &j); err != nil || wi >= writers || it.msg != it.tick {
			t.Fatalf("unexpected message %v", it)
		}
		if j != next[wi] {
			t.Fatalf("writer %d: message %d read before %d, though it was accepted after it", wi, j, next[wi])
		}
		next[wi]++
		msgs, ticks = append(msgs, it.msg), append(ticks, it.tick)
	}
	for _, s := range streams {
		s.expect(5*time.Second, msgs, ticks, "live reader order equals the queue's order")
	}
	w.quiet()
}

func checkWriteRetention(t *caseT) {
	maxQ := t.cfg.EZMaxQueue
	if maxQ > 5000 {
		t.Notef("retention by count: --ez-max-queue %d needs too many writes", maxQ)
	} else {
		q := t.qname()
		w := t.watchEZ(q)
		msgs, ticks := seqTicks("r", 0, maxQ+5)
		since := t.writeMany(q, msgs, ticks)
		got, _ := t.readAll(q, "")
		if err := sameItems(got, msgs[5:], ticks[5:]); err != nil {
			t.skipIfAged(since, fmt.Errorf("after %d writes with --ez-max-queue %d: %w", maxQ+5, maxQ, err))
		}
		w.quiet()
	}
	age := t.cfg.EZMaxAge
	if age < t.cfg.scaled(3*time.Second) {
		t.Notef("retention by age: --ez-max-age %v is too short to tell a kept message from a dropped one", age)
		return
	}
	if age+t.cfg.scaled(time.Second) > t.cfg.MaxWait {
		t.Notef("retention by age: --ez-max-age %v is too long to wait for (start a server with --ez-max-age of a few seconds and pass it)", age)
		return
	}
	q := t.qname()
	t.writeMsg(q, "old", "old")
	t.sleep(age / 2)
	t.writeMsg(q, "young", "young")
	t.sleep(age/2 + t.cfg.scaled(time.Second))
	got, _ := t.readAll(q, "")
	if err := sameItems(got, []string{"young"}, []string{"young"}); err != nil {
		t.Fatalf("after --ez-max-age %v: %v", age, err)
	}
}
