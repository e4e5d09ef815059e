package bench

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// nchanKind is the Nchan peer (nginx + nchan, ../shared/peers/nchan): POST
// /pub/<id>, GET /sub/<id> as a WebSocket or a long-poll.
type nchanKind struct{}

func (nchanKind) name() string   { return "nchan" }
func (nchanKind) column() string { return "nchan" }

// peer is how the suite starts and stops Nchan: one worker.
func (nchanKind) peer(c *runConfig) peerScripts {
	return peerScripts{name: "nchan", dir: c.NchanDir, url: c.NchanURL, pidFile: "/tmp/nchan-run/nginx.pid", cores: "1 worker"}
}

func (k nchanKind) start(c *runConfig, _ []string) (*instance, error) { return k.peer(c).start() }

func (nchanKind) publisherOf(credentials, string) publisher       { return publisher{} }
func (nchanKind) flags(bool) string                               { return "--kind nchan" }
func (nchanKind) checkPublisher(publisher) error                  { return nil }
func (nchanKind) channel(_, prefix string, n int) string          { return nchanID(prefix) + strconv.Itoa(n) }
func (nchanKind) published(r *response) bool                      { return r.status/100 == 2 }
func (nchanKind) checkClient(*clientConfig) error                 { return nil }
func (nchanKind) qname(_, prefix string) string                   { return prefix }
func (nchanKind) supports(string) bool                            { return true }
func (nchanKind) hello() []byte                                   { return nil }
func (nchanKind) pollAnswer([]byte) (string, bool)                { return "", true } // resumed by headers
func (nchanKind) next(frame []byte) ([]byte, int64, bool, []byte) { return frame, -1, false, nil }

func (nchanKind) publish(_ publisher, host, ch string, payload []byte) []byte {
	return postRequest("/pub/"+ch, host, "text/plain", string(payload))
}

// subPath: Nchan resumes a long-poll by its Last-Modified / Etag pair, not
// in the path.
func (nchanKind) subPath(c *clientConfig, g int, _ string) string {
	return "/sub/" + nchanID(c.QName) + strconv.Itoa(g%c.Channels)
}

// peerScripts is a peer under ../shared/peers/<name>: start.sh, stop.sh
// and the pid file start.sh writes.
type peerScripts struct {
	name, dir, url, pidFile string
	cores                   string // the CPU budget start.sh gives it, as the table says
}

// start runs start.sh and returns the peer's pid (the "pid N" start.sh
// prints, else its pid file) once its port answers.
func (p peerScripts) start() (*instance, error) {
	out, err := exec.Command("sh", filepath.Join(p.dir, "start.sh")).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s start.sh: %v: %s", p.name, err, bytes.TrimSpace(out))
	}
	pidText := ""
	if m := pidRE.FindSubmatch(out); m != nil {
		pidText = string(m[1])
	} else if b, err := os.ReadFile(p.pidFile); err == nil {
		pidText = string(b)
	}
	var pid int
	if _, err := fmt.Sscan(pidText, &pid); err != nil || pid <= 0 {
		p.stop()
		return nil, fmt.Errorf("%s: no pid in start.sh's output nor in %s: %s", p.name, p.pidFile, bytes.TrimSpace(out))
	}
	addr, _, _ := hostPort(p.url)
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return &instance{pid: pid, url: p.url, out: func() string { return "" }, stop: p.stop}, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s not answering at %s", p.name, p.url)
}

var pidRE = regexp.MustCompile(`\bpid (\d+)`)

// stop runs stop.sh, which stops the peer by its own pid file only.
func (p peerScripts) stop() {
	exec.Command("sh", filepath.Join(p.dir, "stop.sh")).Run()
}

// command is how a table names the peer's server.
func (p peerScripts) command() string {
	return filepath.Join(p.dir, "start.sh") + " (" + p.cores + "), " + p.url
}
