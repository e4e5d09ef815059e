package conformance

import (
	"net/netip"
	"strings"
	"testing"
)

// The suite's own Cometify computations, against the seed's vectors.
func TestCometifySignatures(t *testing.T) {
	if got := pushSecure("1", "c1h89chHaka9s1", "visitors", "284 people"); got != "149f26540f697a97e886e2527466c6e8" {
		t.Errorf("pushSecure = %s", got)
	}
	if got := listenKey("1", "c1h89chHaka9s1", "metrics", "tweets"); got != "d6d02dbf813a87619a1ab325878942b0" {
		t.Errorf("listenKey metrics,tweets = %s", got)
	}
	if got := listenKey("37282591", "dj28DNam!!nx72*", "guestbook", "comments", "oneliner"); got != "5b70b14ea396f689a1b9550ba66025bc" {
		t.Errorf("listenKey guestbook,comments,oneliner = %s", got)
	}
}

func TestIDList(t *testing.T) {
	if got := idList("a", 0, "b", int64(7)); got != "a:0,b:7" {
		t.Errorf("idList = %q", got)
	}
	if got := advance("a:0,b:7", "b", 9); got != "a:0,b:9" {
		t.Errorf("advance = %q", got)
	}
	for _, bad := range []string{"", "a", "a:", ":1", "a:-1", "a:1,b", "a:x"} {
		if _, _, err := parseIDList(bad); err == nil {
			t.Errorf("parseIDList(%q) accepted", bad)
		}
	}
	if got := cfPath("k", "poll", "a,b", "timeout", "0", "", "dropped", "callback", "cb"); got != "/k/poll?identifiers=a%2Cb&timeout=0&callback=cb" {
		t.Errorf("cfPath = %q", got)
	}
}

func TestSamePerIdentifier(t *testing.T) {
	a1, a2, b1 := pushed("a", 1, "x"), pushed("a", 2, "y"), pushed("b", 1, "z")
	gap := cfItem{kind: cfGap, ident: "a"}
	if err := samePerIdentifier([]cfItem{b1, gap, a1, a2}, []cfItem{gap, a1, a2, b1}); err != nil {
		t.Errorf("interleaved identifiers: %v", err)
	}
	for _, got := range [][]cfItem{{a2, a1, b1}, {a1, a1, b1}, {a1, a2}, {a1, a2, b1, pushed("c", 1, "")}} {
		if samePerIdentifier(got, []cfItem{a1, a2, b1}) == nil {
			t.Errorf("%v accepted", got)
		}
	}
}

func TestSourceAddr(t *testing.T) {
	cfg := Config{Target: "http://127.0.0.1:8080", TrustedProxies: []string{"127.0.0.1/32", "127.0.1.0/24"}}
	s := &runState{}
	seen := map[netip.Addr]bool{}
	for range 1000 {
		a := s.sourceAddr(&cfg)
		if !a.IsValid() || !a.IsLoopback() || seen[a] || cfg.trusted(a) {
			t.Fatalf("sourceAddr gave %v (seen %v, trusted %v)", a, seen[a], cfg.trusted(a))
		}
		seen[a] = true
	}
	if p, ok := cfg.proxyAddr(); !ok || p.String() != "127.0.0.1" {
		t.Errorf("proxyAddr = %v %v", p, ok)
	}
	cfg.TrustedProxies = []string{"10.0.0.0/8", "127.0.9.0/24"}
	if p, ok := cfg.proxyAddr(); !ok || p.String() != "127.0.9.1" {
		t.Errorf("proxyAddr in 127.0.9.0/24 = %v %v", p, ok)
	}
	cfg.Target = "http://example.com:80"
	if a := s.sourceAddr(&cfg); a.IsValid() {
		t.Errorf("sourceAddr for a remote target = %v", a)
	}
	if _, ok := cfg.proxyAddr(); ok {
		t.Error("proxyAddr for a remote target")
	}
}

func TestTrustedProxyFlag(t *testing.T) {
	var out, errb strings.Builder
	args := append(baseArgs("http://127.0.0.1:1"), "--trusted-proxy", "not-a-cidr")
	if code := Main(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--trusted-proxy") {
		t.Errorf("bad --trusted-proxy: exit %d, stderr %q", code, errb.String())
	}
}
