package main

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseClusterArgs: whatever `halley cluster` is given, it either
// refuses it or starts at least one node, passes every other argument to
// the nodes unchanged and in order, and never passes a flag it sets
// itself (--nats, --node-role, --reuseport) or one of its own.
func FuzzParseClusterArgs(f *testing.F) {
	for _, seed := range []string{
		"--nodes\x003\x00--listen\x00127.0.0.1:8080\x00--data\x00/tmp/d",
		"--nodes=4\x00--loops=2\x00--nats-port\x004222",
		"-nodes\x001\x00--nats\x00nats://x",
		"--nodes\x00",
		"--reuseport\x00--nodes=2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		args := strings.Split(in, "\x00")
		c, err := parseClusterArgs(args)
		if err != nil {
			return
		}
		if c.nodes < 1 || c.natsPort < 0 {
			t.Fatalf("accepted %d nodes, nats port %d", c.nodes, c.natsPort)
		}
		for _, a := range c.serve {
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if strings.HasPrefix(a, "-") && slices.Contains([]string{"nats", "node-role", "reuseport", "nodes", "nats-port"}, name) {
				t.Fatalf("passes %q to the nodes", a)
			}
		}
		// What is passed on is args minus its own flags, in order.
		j := 0
		for _, a := range c.serve {
			for j < len(args) && args[j] != a {
				j++
			}
			if j == len(args) {
				t.Fatalf("passes %q, not in %q or out of order", a, args)
			}
			j++
		}
	})
}

func TestParseClusterArgs(t *testing.T) {
	c, err := parseClusterArgs([]string{"--nodes", "3", "--listen", "127.0.0.1:8080", "--data=/d", "--loops", "1"})
	if err != nil || c.nodes != 3 || !c.loops || strings.Join(c.serve, " ") != "--listen 127.0.0.1:8080 --data=/d --loops 1" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range [][]string{{}, {"--nodes", "0"}, {"--nodes", "x"}, {"--nodes", "2", "--nats", "u"}, {"--nodes=2", "--node-role=light"}} {
		if _, err := parseClusterArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
