package conformance

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Main is the `halley conform` subcommand: args are the arguments after the
// subcommand name. It prints one line per case and a closing count, and
// returns the process exit status: 0 when no case failed, 1 when one did, 2
// for bad usage.
func Main(args []string, stdout, stderr io.Writer) int {
	var cfg Config
	var rules, accountCmd, also string
	var jsonOut, list bool
	fs := flag.NewFlagSet("conform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", "", "server base URL, e.g. http://127.0.0.1:8080 (required)")
	fs.StringVar(&also, "also", "", "comma-separated other addresses of the same server, e.g. http://127.0.0.1:2323 (C-01)")
	fs.StringVar(&cfg.Account.User, "user", "", "account username (required)")
	fs.StringVar(&cfg.Account.Key, "key", "", "account api_key, the private EZComet write key (required)")
	fs.StringVar(&cfg.Account.CFKey, "cf-key", "", "account cf_api_key, the public Cometify key (required)")
	fs.StringVar(&cfg.Account.Secret, "secret", "", "account api_secret (required)")
	fs.StringVar(&cfg.Account2.User, "user2", "", "second account username (optional)")
	fs.StringVar(&cfg.Account2.Key, "key2", "", "second account api_key")
	fs.StringVar(&cfg.Account2.Secret, "secret2", "", "second account api_secret")
	fs.StringVar(&cfg.Account2.CFKey, "cf-key2", "", "second account cf_api_key")
	fs.StringVar(&cfg.Demo.Key, "demo-key", "", "the demo account's api_key as the server printed it (A-03: never in a page)")
	fs.StringVar(&cfg.Demo.CFKey, "demo-cf-key", "", "the demo account's cf_api_key as the server printed it (A-03)")
	fs.StringVar(&cfg.Demo.Secret, "demo-secret", "", "the demo account's api_secret as the server printed it (A-03: never in a page)")
	fs.StringVar(&cfg.DemoPushPath, "demo-push-path", "", "the server's demo-only push endpoint, e.g. /demo/push (A-03: loopback clients only)")
	fs.StringVar(&cfg.DemoWritePath, "demo-write-path", "", "the server's demo-only write endpoint (A-03: loopback clients only)")
	fs.StringVar(&rules, "rules", "", "run only rules whose id starts with one of these comma-separated prefixes, e.g. EZ-W,C-0")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object per case, then a summary object")
	fs.BoolVar(&list, "list", false, "print the selected rule ids and what each case checks, run nothing")
	fs.IntVar(&cfg.EZMaxQueue, "ez-max-queue", 1000, "the server's --ez-max-queue")
	fs.DurationVar(&cfg.EZMaxAge, "ez-max-age", 24*time.Hour, "the server's --ez-max-age")
	fs.IntVar(&cfg.ReadBatch, "read-batch", 1000, "the server's --read-batch")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", 8192, "the server's request line + header limit")
	fs.IntVar(&cfg.MaxBodyBytes, "max-body-bytes", 262144, "the server's request body limit")
	fs.DurationVar(&cfg.HeaderTimeout, "header-timeout", 10*time.Second, "the server's header read deadline")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 120*time.Second, "the server's idle keep-alive timeout")
	fs.IntVar(&cfg.MaxFrameBytes, "max-frame-bytes", 65536, "the server's WebSocket frame limit for client frames")
	fs.IntVar(&cfg.MaxUnsentBytes, "max-unsent-bytes", 4<<20, "the server's per-connection unsent output cap")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", 30*time.Second, "the longest the server waits between WebSocket pings")
	fs.DurationVar(&cfg.SSEHeartbeat, "sse-heartbeat", 15*time.Second, "the longest the server waits between SSE comment heartbeats")
	fs.DurationVar(&cfg.CFReplayWindow, "cf-replay-window", 10*time.Minute, "the server's --cf-replay-window (Cometify id 0 replay)")
	fs.DurationVar(&cfg.CFResumeWindow, "cf-resume-window", 3*time.Minute, "the server's --cf-resume-window (Cometify id > 0 replay)")
	fs.IntVar(&cfg.MaxIdentifiers, "max-identifiers", 100, "the server's --max-identifiers per Cometify listener")
	fs.IntVar(&cfg.MaxListenersPerIP, "max-listeners-per-ip", 30, "the test accounts' listeners per client IP")
	fs.Func("trusted-proxy", "a CIDR the server trusts for X-Forwarded-For (repeatable; enables part of C-07)", func(v string) error {
		cfg.TrustedProxies = append(cfg.TrustedProxies, v)
		return nil
	})
	fs.Float64Var(&cfg.TimeoutScale, "timeout-scale", 1, "multiply the suite's own deadlines and slack (slow machines, -race builds)")
	fs.StringVar(&accountCmd, "account-cmd", "", `command prefix for account management, e.g. "halley account --data DIR" (enables A-02 and A-04)`)
	fs.IntVar(&cfg.PID, "pid", 0, "the server's pid; enables C-11, which sends it SIGTERM after every other case")
	fs.IntVar(&cfg.Parallel, "parallel", 8, "how many cases run at once")
	fs.DurationVar(&cfg.MaxWait, "max-wait", 15*time.Second, "longest server timer a check waits for; longer ones are skipped")
	wireFlags(fs, &cfg.Wire)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "conform: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for _, r := range strings.Split(rules, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.Rules = append(cfg.Rules, r)
		}
	}
	cfg.AccountCmd = strings.Fields(accountCmd)
	for _, a := range strings.Split(also, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Also = append(cfg.Also, a)
		}
	}
	if list {
		for _, c := range allCases() {
			if cfg.selected(c.rule) {
				fmt.Fprintf(stdout, "%s %s\n", c.rule, c.what)
			}
		}
		return 0
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "conform: %v\n", err)
		fs.Usage()
		return 2
	}
	rep := textReporter(stdout)
	if jsonOut {
		rep = jsonReporter(stdout)
	}
	sum := run(cfg, allCases(), rep)
	if sum.Failed > 0 {
		return 1
	}
	return 0
}
