// Command halley is the Halley push server: one binary with the
// subcommands serve, account, backup, restore, conform and bench.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/halleypush/halley/bench"
	"github.com/halleypush/halley/conformance"
)

const usage = `halley — a self-hosted real-time push server (EZComet and Cometify APIs)

Usage:
  halley serve   [flags]                 serve (see halley serve --help)
  halley config  print [--json] [--config FILE] [serve flags]   effective serve settings and their sources
  halley cluster --nodes N [serve flags]  N local nodes on one port with an embedded NATS (docs/cluster.md)
  halley account [--data DIR] [--json] add NAME | list | rm NAME | set NAME --max-listeners-per-ip N
  halley backup  [--data DIR] DEST       back up a running server or a stopped data directory
  halley restore [--data DIR] BACKUP     restore a backup into an empty or absent data directory
  halley conform --target URL --user U --key K --secret S [...]   run the conformance suite
  halley bench   idle|write|run [...]    load harness
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveMain(args[1:], stdout, stderr)
	case "config":
		return configMain(args[1:], stdout, stderr)
	case "cluster":
		return clusterMain(args[1:], stdout, stderr)
	case "account":
		return accountMain(args[1:], stdout, stderr)
	case "backup":
		return backupMain(args[1:], stdout, stderr)
	case "restore":
		return restoreMain(args[1:], stdout, stderr)
	case "conform":
		return conformance.Main(args[1:], stdout, stderr)
	case "bench":
		return bench.Main(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "halley: unknown command %q\n\n%s", args[0], usage)
	return 2
}
