// Package bench is Halley's load harness ("halley bench ..."). It is black
// box: it talks to a server (Halley, the Nchan peer or the Centrifuge
// peer) over sockets only and imports nothing else of this module. Each
// server API is a serverKind (kinds.go).
//
//	idle   many idle subscribers, server RSS slope per connection
//	write  closed-loop publish load, req/s and latency percentiles
//	fanout WebSocket subscribers on one channel, paced publishes: deliveries/s, latency, loss
//	floor  the kernel's floor: one thread writes a frame to many loopback sockets, CPU per frame
//	storm  Cometify listeners all reset at once resume by id: time to reconnect and catch up, loss
//	run    the driver behind "make bench": each case 3×, medians, Markdown + JSONL + a plot
//	plot   the plots of run, drawn again from results.jsonl
//	client hidden: a client process the idle command forks (via os.Executable)
//	fanclient hidden: a client process the fanout command forks
//	standin hidden: N copies of a server command under one pid, in place of "halley cluster"
package bench

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Main is "halley bench ARGS...".
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "idle":
		return cmdIdle(args[1:], stdout, stderr)
	case "write":
		return cmdWrite(args[1:], stdout, stderr)
	case "fanout":
		return cmdFanout(args[1:], stdout, stderr)
	case "storm":
		return cmdStorm(args[1:], stdout, stderr)
	case "fanclient":
		return cmdFanClient(args[1:], os.Stdin, stdout, stderr)
	case "floor":
		return cmdFloor(args[1:], stdout, stderr)
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "plot":
		return cmdPlot(args[1:], stdout, stderr)
	case "client":
		return cmdClient(args[1:], os.Stdin, stdout, stderr)
	case "standin":
		return cmdStandin(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "bench: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: halley bench <command> [flags]   (each command: -h for its flags)

  idle   --target URL --pid PID --mode ws|longpoll [--kind halley|cometify|nchan|centrifuge] [--key K] [--counts 2000,18000]
         hold idle subscribers from forked client processes; report the server's
         RSS slope per connection, kernel TCP memory and the clients' own RSS
  write  --target URL [--kind halley|cometify|nchan|centrifuge] [--conns 16] [--duration 10s] [--channels 100]
         [--size 100] [--key K --user U]
         closed-loop keep-alive publish load; req/s, p50/p90/p99/max, errors
  fanout --target URL [--kind halley|cometify|nchan|centrifuge] [--subs 10000] [--msgs 200] [--rate 20] [--size 100]
         [--key K --user U | --key K --secret S] [--pid PID] [--client-readers 1] [--client-coalesce 1ms]
         WebSocket subscribers on one fresh channel, paced publishes; deliveries/s,
         p50/p90/p99/max latency, rate kept, missing/duplicates, server CPU/delivery
  storm  --target URL --key K --secret S [--subs 18000] [--msgs 600] [--rate 20] [--at 10s] [--pid PID]
         Cometify WebSocket listeners all reset at once, each resumes by id: time until all
         are open again and have caught up; lost/duplicated/out-of-order pushes (Halley only)
  floor  [--socks 9000] [--rounds 32] [--size 100] [--per-write 1,4,16]
         one thread writes the same frame to every loopback socket, no server logic;
         its CPU per frame (getrusage of the thread) and frames/s, for each frames-per-write
  run    --halley-cmd "halley serve --data {tmp} --listen 127.0.0.1:PORT" --key K --user U [--nchan] [--centrifuge]
         every case 3 times on a fresh server, medians, bench/results/<case>.md + .png + results.jsonl
  plot   [--out bench/results]   draw the plots of results.jsonl again (the last line of each case)
`)
}

// freshPrefix names channels uniquely per run (base 36 of the clock).
func freshPrefix() string {
	return "b" + strconv.FormatInt(time.Now().UnixNano()/1e6%(36*36*36*36*36*36), 36)
}

func printJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s\n", b)
}

// parseCounts parses "2000,18000": at least two strictly increasing counts.
func parseCounts(s string) ([]int, error) {
	out, err := parseInts(s)
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(out); i++ {
		if out[i] <= out[i-1] {
			return nil, fmt.Errorf("counts must increase: %q", s)
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("need at least two counts, got %q", s)
	}
	return out, nil
}

// parseInts parses "1,4,16": positive numbers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseFlags parses args and refuses leftover arguments (a flag missing its
// value would otherwise silently end parsing).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q (a flag before it missing its value?)", fs.Arg(0))
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return err
	}
	return nil
}
