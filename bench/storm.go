package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"
)

// cmdStorm is "bench storm" (PERF.md P6): Cometify WebSocket listeners on
// one identifier, pushes at a modest rate, and at one moment every listener
// is reset (TCP RST) and reconnects at once with the id-form LIST of the
// last push it got (SPEC CF-L-05, X-04). Reported: how long until all are
// open again, how long until all have every push sent by then, and, at the
// end, pushes lost, duplicated or out of order per listener (the fan-out
// accounting, which spans the reconnection).
func cmdStorm(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := stormDefaults()
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "server base URL (Halley: its Cometify API)")
	fs.StringVar(&c.Key, "key", "", "Cometify api key")
	fs.StringVar(&c.Secret, "secret", "", "Cometify api secret, to sign the pushes")
	fs.IntVar(&c.Subs, "subs", c.Subs, "WebSocket listeners on the one identifier")
	fs.IntVar(&c.Msgs, "msgs", c.Msgs, "pushes in all")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "push rate, /s")
	fs.IntVar(&c.Size, "size", c.Size, "push bytes")
	fs.DurationVar(&c.StormAt, "at", c.StormAt, "reset every listener this long after the pushing started")
	fs.DurationVar(&c.StormWait, "wait", c.StormWait, "wait at most this for the reconnections, then as long again for the catching up")
	fs.IntVar(&c.PID, "pid", 0, "server pid (optional): its CPU time per delivery")
	fs.IntVar(&c.PerProcess, "per-process", c.PerProcess, "listeners per client process (a reconnecting one briefly holds 2 fds; limit 20000)")
	fs.IntVar(&c.PerIP, "per-ip", c.PerIP, "connections per loopback source address (Cometify's cap is 30 per IP)")
	fs.IntVar(&c.DialConc, "dial-conc", c.DialConc, "connections being opened (and re-opened in the storm) at once per client process")
	jsonOut := fs.Bool("json", false, "print the result as one JSON line")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if c.StormAt <= 0 || float64(c.Msgs)/c.Rate <= c.StormAt.Seconds() {
		fmt.Fprintln(stderr, "bench storm: --at must be > 0 and before the last push (--msgs / --rate)")
		return 2
	}
	res, err := runFanout(context.Background(), c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "bench storm:", err)
		return 1
	}
	if *jsonOut {
		printJSON(stdout, res)
	} else {
		printFanout(stdout, &c, &res)
	}
	if !stormOK(&res) {
		return 1
	}
	return 0
}

// stormDefaults is the P6 case as PERF.md asks it: 18,000 listeners,
// 20 pushes/s for 25 s, the reset 10 s in (360,000 deliveries/s). Until
// 2026-12-07 it ran at 5/s: at 20/s the live fan-out of the time fell
// behind on this 2-CPU box, and the catching up measured that, not the
// resume (bench/README.md); now the fan-out keeps 20/s.
func stormDefaults() fanoutConfig {
	return fanoutConfig{Kind: "cometify", Subs: 18000, Msgs: 500, Rate: 20, Size: 100, StormAt: 10 * time.Second,
		StormWait: time.Minute, PerProcess: 9000, PerIP: 20, DialConc: 256, OpenTimeout: 2 * time.Minute,
		Grace: 10 * time.Second, Drain: time.Minute, Quiet: 5 * time.Second, MaxLife: 10 * time.Minute}
}

// stormOK: every listener reconnected and caught up, nothing lost,
// repeated or out of order, every push accepted.
func stormOK(res *fanoutResult) bool {
	s := res.Storm
	return s != nil && s.GaveUp == 0 && s.ReconnectMs >= 0 && s.CaughtMs >= 0 && s.Reconnected == s.Dropped &&
		res.Missing == 0 && res.Duplicates == 0 && res.OutOfOrder == 0 && res.PubErrors == 0
}
