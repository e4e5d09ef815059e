package conformance

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// statsCases is X-03, the account's introspection endpoint.
func statsCases() []ruleCase {
	return []ruleCase{{
		rule: "X-03",
		what: "GET /{cf_api_key}/stats with Bearer api_secret: listeners per identifier and in total, queued messages per channel, busiest client IPs; 401 (the private api_key in the path too)/403",
		run:  checkStats,
	}}
}

// accountStats is a decoded stats answer.
type accountStats struct {
	raw       *reply
	listeners map[string]int64
	total     int64
	channels  map[string]int64
	ips       []ipCount
}

type ipCount struct {
	ip        string
	listeners int64
}

func (s accountStats) ipListeners(ip string) int64 {
	for _, c := range s.ips {
		if c.ip == ip {
			return c.listeners
		}
	}
	return 0
}

// stats fetches and decodes the stats of account a.
func (t *caseT) stats(a Account) accountStats {
	r := t.do("GET", "/"+a.CFKey+"/stats", "", "Authorization: Bearer "+a.Secret)
	m := t.wantOK(r, "stats")
	num := func(v any, what string) int64 {
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 0 {
			t.Fatalf("stats: %s must be a non-negative integer: %s", what, r)
		}
		return i
	}
	counts := func(key string) map[string]int64 {
		obj, ok := m[key].(map[string]any)
		if !ok {
			t.Fatalf(`stats: want a "%s" object, got %s`, key, r)
		}
		out := map[string]int64{}
		for k, v := range obj {
			out[k] = num(v, key+"."+k)
		}
		return out
	}
	s := accountStats{raw: r, listeners: counts("listeners"), channels: counts("channels"), total: num(m["listeners_total"], "listeners_total")}
	list, ok := m["client_ips"].([]any)
	if !ok {
		t.Fatalf(`stats: want a "client_ips" array, got %s`, r)
	}
	for _, e := range list {
		o, ok := e.(map[string]any)
		ip, ok2 := o["ip"].(string)
		if !ok || !ok2 {
			t.Fatalf(`stats: client_ips holds {"ip":"…","listeners":N} objects: %s`, r)
		}
		s.ips = append(s.ips, ipCount{ip: ip, listeners: num(o["listeners"], "client_ips listeners")})
	}
	if len(s.ips) > 10 {
		t.Fatalf("stats: %d client_ips, want at most 10: %s", len(s.ips), r)
	}
	for i := 1; i < len(s.ips); i++ {
		if s.ips[i].listeners > s.ips[i-1].listeners {
			t.Fatalf("stats: client_ips not busiest first: %s", r)
		}
	}
	return s
}

// statsUntil polls stats until ok holds, for up to two seconds (scaled),
// and fails with the last answer otherwise.
func (t *caseT) statsUntil(a Account, what string, ok func(accountStats) error) accountStats {
	end := time.Now().Add(t.cfg.scaled(2 * time.Second))
	for {
		s := t.stats(a)
		err := ok(s)
		if err == nil {
			return s
		}
		if time.Now().After(end) {
			t.Fatalf("stats %s: %v: %s", what, err, s.raw)
		}
		t.sleep(100 * time.Millisecond)
	}
}

func checkStats(t *caseT) {
	// The second account is quieter: other cases hold listeners on the
	// first, which can push this case's IP out of the busiest ten.
	a := t.cfg.Account
	if a2 := t.cfg.Account2; a2.Key != "" && a2.Secret != "" {
		a = a2
	}
	path := "/" + a.CFKey + "/stats"
	t.wantError(t.do("GET", path, ""), 401, "stats without Authorization")
	for _, h := range []string{
		"Basic " + base64.StdEncoding.EncodeToString([]byte(a.CFKey+":"+a.Secret)),
		"Bearer",
		"Bearer ",
		a.Secret,
	} {
		t.wantError(t.do("GET", path, "", "Authorization: "+h), 401, fmt.Sprintf("stats with Authorization %q", h))
	}
	t.wantError(t.do("GET", "/"+randHex(32)+"/stats", "", "Authorization: Bearer "+a.Secret), 401, "stats of an unknown key")
	t.wantError(t.do("GET", "/"+a.Key+"/stats", "", "Authorization: Bearer "+a.Secret), 401, "stats under the private api_key (A-01: only the cf_api_key goes in a path)")
	t.wantError(t.do("GET", path, "", "Authorization: Bearer "+randHex(12)+"_-"+randHex(12)), 403, "stats with another secret")
	if other := t.cfg.Account; other.CFKey != a.CFKey {
		t.wantError(t.do("GET", path, "", "Authorization: Bearer "+other.Secret), 403, "stats with the other account's secret")
	}

	ip, own := t.freshOrSame()
	if !own {
		t.Notef("client_ips (the suite cannot choose its client IP for a target that is not IPv4 loopback)")
	}
	x, y := ident(), ident()
	q := a.User + "-cf" + randHex(12)
	for i := range 3 {
		t.wantOK(t.write("api_key", a.Key, "qname", q, "msg", fmt.Sprint(i)), "write to "+q)
	}
	l1 := ip.openCF(viaWS, x+","+y, cfOpen{acct: a})
	l2 := ip.openCF(viaWS, strings.ToUpper(x), cfOpen{acct: a})
	l3 := ip.openCF(viaSSE, y, cfOpen{acct: a})
	poll := ip.hold(viaPoll, a, x, "a waiting poll")
	want := func(nx, ny, nip int64) func(accountStats) error {
		return func(s accountStats) error {
			got := [3]int64{s.listeners[x], s.listeners[y], s.ipListeners(ip.src.String())}
			if got[0] != nx || got[1] != ny {
				return fmt.Errorf("listeners %s=%d %s=%d, want %d and %d", x, got[0], y, got[1], nx, ny)
			}
			if own && got[2] != nip {
				if got[2] == 0 && len(s.ips) == 10 && s.ips[9].listeners >= nip {
					return nil // ten busier IPs: this one need not show
				}
				return fmt.Errorf("client_ips %s=%d, want %d", ip.src, got[2], nip)
			}
			if s.total < nip {
				return fmt.Errorf("listeners_total %d below this case's %d", s.total, nip)
			}
			return nil
		}
	}
	s := t.statsUntil(a, "with 2 WebSockets, an SSE stream and a waiting poll", want(3, 2, 4))
	if s.channels[q] != 3 {
		t.Fatalf("stats: channels[%s]=%d, want 3 queued messages: %s", q, s.channels[q], s.raw)
	}
	// A poll counts while it waits: a push answers it.
	t.pushAs(a, x, "wake", "0", "")
	r, err := poll.readErr("GET", 5*time.Second)
	if err != nil {
		t.Fatalf("the waiting poll after a push: %v", err)
	}
	t.wantOK(r, "the waiting poll after a push")
	l2.close()
	t.statsUntil(a, "after the poll was answered and a WebSocket closed", want(1, 2, 2))
	l1.close()
	l3.close()
	t.statsUntil(a, "after every listener closed", want(0, 0, 0))
}
