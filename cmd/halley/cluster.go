package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/halleypush/halley/cluster"
)

// `halley cluster --nodes N [serve flags]` (issue 17, S-03): N local
// nodes behind one port and an embedded nats-server, the default for one
// many-core machine. This process runs the NATS server (loopback only)
// and supervises the nodes, each a child process of this binary: one
// store node (`serve --node-role store`, the only one with a data
// directory) and N-1 light nodes, all given the serve flags and
// --reuseport, so the kernel spreads connections over them. A light node
// that dies is logged and restarted after a second; the store node is
// logged only (until it is back, writes are 503 everywhere: restart the
// command, or run the nodes under a supervisor). SIGTERM or SIGINT stops
// every node gracefully, then NATS.

const clusterUsage = `halley cluster --nodes N [--nats-port P] [serve flags]

Starts an embedded NATS server on 127.0.0.1 (port P, default any free
port) and N nodes sharing the serve flags' --listen (SO_REUSEPORT): one
store node, which owns --data, and N-1 light nodes, which hold
connections only. Without --loops each node gets max(1, CPUs/N) loops.
`

// clusterArgs splits `halley cluster`'s own flags from the serve flags
// passed through to every node.
type clusterArgs struct {
	nodes    int
	natsPort int
	serve    []string
	loops    bool // the serve flags set --loops
}

func parseClusterArgs(args []string) (clusterArgs, error) {
	c := clusterArgs{nodes: 0}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			c.serve = append(c.serve, a)
			continue
		}
		switch name {
		case "nodes", "nats-port":
			if !hasVal {
				if i+1 >= len(args) {
					return c, fmt.Errorf("--%s needs a value", name)
				}
				i++
				val = args[i]
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return c, fmt.Errorf("--%s %q: not a count", name, val)
			}
			if name == "nodes" {
				c.nodes = n
			} else {
				c.natsPort = n
			}
			continue
		case "nats", "node-role", "reuseport":
			return c, fmt.Errorf("--%s is set by halley cluster", name)
		case "loops":
			c.loops = true
		}
		c.serve = append(c.serve, a)
	}
	if c.nodes < 1 {
		return c, fmt.Errorf("--nodes must be at least 1")
	}
	return c, nil
}

func clusterMain(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, clusterUsage)
			return 0
		}
	}
	c, err := parseClusterArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "halley cluster: %v\n\n%s", err, clusterUsage)
		return 2
	}
	log := newLogger(stderr, "info")
	if err := runCluster(c, log, stdout, stderr); err != nil {
		log.Error("halley cluster failed", "err", err)
		return 1
	}
	return 0
}

func runCluster(c clusterArgs, log *slog.Logger, stdout, stderr io.Writer) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	nats, err := cluster.StartNATS(cluster.NATSOptions{Port: c.natsPort,
		Logf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }})
	if err != nil {
		return err
	}
	defer nats.Close()
	log.Info("embedded NATS", "url", nats.URL())

	common := []string{"serve", "--nats", nats.URL(), "--reuseport"}
	if !c.loops {
		common = append(common, "--loops", strconv.Itoa(max(1, runtime.NumCPU()/c.nodes)))
	}
	sup := &supervisor{bin: bin, log: log, stdout: stdout, stderr: stderr, quit: make(chan struct{})}
	sup.start("store", append(append(common, "--node-role", roleStore), c.serve...), false)
	if err := waitStoreNode(nats.URL(), log); err != nil {
		sup.stop()
		return err
	}
	for i := 1; i < c.nodes; i++ {
		sup.start(fmt.Sprintf("light-%d", i), append(append(common, "--node-role", roleLight), c.serve...), true)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	s := <-sig
	log.Info("stopping every node", "signal", s.String())
	sup.stop()
	return nil
}

// waitStoreNode waits until the store node answers on NATS, so that the
// light nodes find their accounts at once.
func waitStoreNode(url string, log *slog.Logger) error {
	link, err := cluster.Dial(cluster.LinkOptions{URL: url, Name: "halley-cluster",
		Logf: func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) }})
	if err != nil {
		return err
	}
	defer link.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := link.Ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("store node did not come up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// supervisor runs the nodes as child processes.
type supervisor struct {
	bin            string
	log            *slog.Logger
	stdout, stderr io.Writer
	quit           chan struct{}
	wg             sync.WaitGroup
	mu             sync.Mutex
	running        map[string]*exec.Cmd
}

// start runs a node and watches it: restart says whether it is started
// again when it dies.
func (s *supervisor) start(name string, args []string, restart bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.quit:
				return
			default:
			}
			cmd := exec.Command(s.bin, args...)
			cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
			cmd.SysProcAttr = childAttr()
			if err := cmd.Start(); err != nil {
				s.log.Error("node did not start", "node", name, "err", err)
			} else {
				s.log.Info("node started", "node", name, "pid", cmd.Process.Pid)
				s.mu.Lock()
				if s.running == nil {
					s.running = make(map[string]*exec.Cmd)
				}
				s.running[name] = cmd
				s.mu.Unlock()
				err = cmd.Wait()
				s.mu.Lock()
				delete(s.running, name)
				s.mu.Unlock()
				select {
				case <-s.quit:
					return
				default:
				}
				s.log.Error("node exited", "node", name, "pid", cmd.Process.Pid, "err", err)
			}
			if !restart {
				return
			}
			select {
			case <-s.quit:
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// stop sends SIGTERM to every node and waits for them (each drains within
// its --drain-timeout; past a minute they are killed).
func (s *supervisor) stop() {
	close(s.quit)
	s.mu.Lock()
	for _, cmd := range s.running {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		s.mu.Lock()
		for _, cmd := range s.running {
			_ = cmd.Process.Kill()
		}
		s.mu.Unlock()
		<-done
	}
}
