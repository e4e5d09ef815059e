package bench

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ezKind is Halley's EZComet API: POST /write, GET /read/ws and GET /read.
type ezKind struct{}

// cfKind is Halley's Cometify API (SPEC §5): POST /K/push/<id>, GET
// /K/listen and GET /K/poll; pushes are signed (CF-P-03).
type cfKind struct{}

func (ezKind) name() string   { return "halley" }
func (cfKind) name() string   { return "cometify" }
func (ezKind) column() string { return "halley" }
func (cfKind) column() string { return "halley" }

func (ezKind) start(c *runConfig, extra []string) (*instance, error) { return startHalley(c, extra) }
func (cfKind) start(c *runConfig, extra []string) (*instance, error) { return startHalley(c, extra) }

// publisherOf: EZComet writes with the private api_key.
func (ezKind) publisherOf(c credentials, user string) publisher {
	return publisher{Key: c.key, User: user, Secret: c.secret}
}

// publisherOf: Cometify paths and signatures take the public cf_api_key.
func (cfKind) publisherOf(c credentials, user string) publisher {
	return publisher{Key: c.cfKey, User: user, Secret: c.secret}
}

func (ezKind) flags(publish bool) string {
	if publish {
		return "--key K --user U"
	}
	return "--user U"
}

func (cfKind) flags(publish bool) string {
	if publish {
		return "--kind cometify --key K --secret S"
	}
	return "--kind cometify --key K"
}

func (ezKind) checkPublisher(p publisher) error {
	if p.Key == "" || p.User == "" {
		return fmt.Errorf("--kind halley needs --key and --user")
	}
	return nil
}

func (cfKind) checkPublisher(p publisher) error {
	if p.Key == "" || p.Secret == "" {
		return fmt.Errorf("--kind cometify needs --key and --secret")
	}
	return nil
}

func (ezKind) channel(user, prefix string, n int) string {
	return user + "-" + prefix + strconv.Itoa(n)
}
func (cfKind) channel(user, prefix string, n int) string { return nchanID(prefix) + strconv.Itoa(n) }

func (ezKind) publish(p publisher, host, ch string, payload []byte) []byte {
	return postRequest("/write", host, "application/x-www-form-urlencoded",
		formBody("api_key", p.Key, "qname", ch, "msg", string(payload)))
}

func (cfKind) publish(p publisher, host, ch string, payload []byte) []byte {
	return postRequest("/"+p.Key+"/push/"+ch, host, "application/x-www-form-urlencoded",
		formBody("identifier", ch, "secret", "0", "text", string(payload),
			"secure", cfSecure(p.Key, p.Secret, ch, string(payload))))
}

// halleyAccepted: a 2xx starting with {"code":"ok" (both APIs).
func halleyAccepted(r *response) bool {
	return r.status/100 == 2 && bytes.HasPrefix(r.body, []byte(`{"code":"ok"`))
}

func (ezKind) published(r *response) bool { return halleyAccepted(r) }
func (cfKind) published(r *response) bool { return halleyAccepted(r) }

func (ezKind) checkClient(c *clientConfig) error {
	if !strings.Contains(c.QName, "-") {
		return fmt.Errorf("--qname %q: a Halley qname is <user>-<channel>", c.QName)
	}
	return nil
}

func (cfKind) checkClient(c *clientConfig) error {
	if c.Key == "" {
		return fmt.Errorf("--kind cometify needs --key")
	}
	return checkIdentifierPrefix(c.QName)
}

func (ezKind) qname(user, prefix string) string { return user + "-" + prefix }
func (cfKind) qname(user, prefix string) string { return prefix }

func (ezKind) subPath(c *clientConfig, g int, resume string) string {
	name := c.QName + strconv.Itoa(g%c.Channels) // a qname, <user>-<channel>
	if c.Mode == "ws" {
		return "/read/ws?qname=" + url.QueryEscape(name)
	}
	p := "/read?qname=" + url.QueryEscape(name) + "&timeout=" + strconv.Itoa(c.Timeout)
	if resume != "" {
		p += "&tick=" + url.QueryEscape(resume)
	}
	return p
}

func (cfKind) subPath(c *clientConfig, g int, resume string) string {
	if resume == "" {
		resume = nchanID(c.QName) + strconv.Itoa(g%c.Channels) // an identifier
	}
	if c.Mode == "ws" {
		return "/" + c.Key + "/listen?identifiers=" + url.QueryEscape(resume)
	}
	return "/" + c.Key + "/poll?identifiers=" + url.QueryEscape(resume) + "&timeout=" + strconv.Itoa(c.Timeout)
}

func (ezKind) supports(string) bool { return true }
func (cfKind) supports(string) bool { return true }

func (ezKind) hello() []byte { return nil }
func (cfKind) hello() []byte { return nil }

// next: an EZComet frame is the JSON array ["<tick>","<msg>"]; frames that
// are not arrays ({"gap":true}) are ignored.
func (ezKind) next(frame []byte) ([]byte, int64, bool, []byte) {
	if len(frame) == 0 || frame[0] != '[' {
		return nil, -1, true, nil
	}
	if _, msg, ok := ezScan(frame); ok {
		return msg, -1, false, nil
	}
	var a []string
	if json.Unmarshal(frame, &a) != nil || len(a) < 2 {
		return nil, -1, false, nil
	}
	return []byte(a[1]), -1, false, nil
}

// next: a Cometify push is {"identifier":"…","id":N,"data":"…"}; objects
// without "data" (the {"since":…} resume point, gap signals) are ignored.
func (cfKind) next(frame []byte) ([]byte, int64, bool, []byte) {
	if len(frame) == 0 || frame[0] != '{' {
		return nil, -1, false, nil
	}
	if data, id, push, ok := cfPushScan(frame); ok {
		if !push {
			return nil, -1, true, nil
		}
		return data, id, false, nil
	}
	var p struct {
		ID   *int64  `json:"id"`
		Data *string `json:"data"`
	}
	if json.Unmarshal(frame, &p) != nil {
		return nil, -1, false, nil
	}
	if p.Data == nil {
		return nil, -1, true, nil
	}
	if p.ID == nil || *p.ID < 1 {
		return nil, -1, false, nil
	}
	return []byte(*p.Data), *p.ID, false, nil
}

// resumePoint: a Cometify stream starts with {"since":"<name>:<id>"}.
func (cfKind) resumePoint(frame []byte) (int64, bool) { return sinceID(frame) }

// pollAnswer: where the next EZComet poll goes on from is the newest
// message's tick.
func (ezKind) pollAnswer(body []byte) (string, bool) {
	// The compact answer of one message, read without a JSON decoder
	// (the clients share the CPUs with the server; the decoder was a
	// sixth of a long-poll client's CPU per answer).
	if in, ok := bytes.CutPrefix(body, []byte(`{"code":"ok","messages":[`)); ok {
		if in, ok = bytes.CutSuffix(in, []byte(`]}`)); ok {
			if tick, _, ok := ezScan(in); ok {
				return string(tick), true
			}
		}
	}
	return ezPollJSON(body)
}

// ezPollJSON is ezKind.pollAnswer through the JSON decoder.
func ezPollJSON(body []byte) (string, bool) {
	var a struct {
		Messages [][]string `json:"messages"`
	}
	if json.Unmarshal(body, &a) != nil || len(a.Messages) == 0 {
		return "", false
	}
	m := a.Messages[len(a.Messages)-1]
	if len(m) == 0 {
		return "", false
	}
	return m[0], true
}

// pollAnswer: a Cometify poll goes on from "since", given with or without
// pushes (CF-L-02).
func (cfKind) pollAnswer(body []byte) (string, bool) {
	// Halley's answer without a gap or retry_ms, read without a JSON
	// decoder: {"code":"ok","pushes":[…],"since":"<since>"}. An unescaped
	// `],"since":"` cannot occur inside a JSON string, and since holds no
	// quote, so its last occurrence ends the pushes.
	if in, ok := bytes.CutPrefix(body, []byte(`{"code":"ok","pushes":[`)); ok {
		if in, ok = bytes.CutSuffix(in, []byte(`"}`)); ok {
			if i := bytes.LastIndex(in, []byte(`],"since":"`)); i >= 0 {
				since := in[i+len(`],"since":"`):]
				if bytes.IndexByte(since, '"') < 0 && bytes.IndexByte(since, '\\') < 0 {
					return string(since), i > 0
				}
			}
		}
	}
	return cfPollJSON(body)
}

// cfPollJSON is cfKind.pollAnswer through the JSON decoder.
func cfPollJSON(body []byte) (string, bool) {
	var a struct {
		Pushes []json.RawMessage `json:"pushes"`
		Since  string            `json:"since"`
	}
	if json.Unmarshal(body, &a) != nil {
		return "", false
	}
	return a.Since, len(a.Pushes) > 0
}

// syncBuffer keeps the first max bytes of a server's output.
type syncBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room := s.max - s.b.Len(); room > 0 {
		s.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// halleyServer is one started Halley.
type halleyServer struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	tmp  string
	done chan struct{}
}

// listenURL finds --listen ADDR (or --listen=ADDR) in a command line.
func listenURL(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--listen="); ok {
			return "http://" + v
		}
		if (a == "--listen" || a == "-listen") && i+1 < len(args) {
			return "http://" + args[i+1]
		}
	}
	return "http://127.0.0.1:8080"
}

// halleyArgs splits the command line, puts a fresh directory in place of
// {tmp}, and appends extra flags.
func halleyArgs(cmdline, tmp string, extra []string) []string {
	f := strings.Fields(cmdline)
	for i := range f {
		f[i] = strings.ReplaceAll(f[i], "{tmp}", tmp)
	}
	return append(f, extra...)
}

var keyRE = regexp.MustCompile(`\b[0-9a-f]{32}\b`)

// startHalley starts a fresh Halley from --halley-cmd and waits for
// /healthz; its pid is the child's.
func startHalley(c *runConfig, extra []string) (*instance, error) {
	if c.HalleyCmd == "" {
		return nil, fmt.Errorf("no --halley-cmd")
	}
	s, err := startHalleyCmd(c.HalleyCmd, extra, c.HalleyURL)
	if err != nil {
		return nil, err
	}
	return &instance{pid: s.cmd.Process.Pid, url: c.HalleyURL, out: s.out.String, stop: s.stop}, nil
}

// startHalleyCmd starts the server and waits for /healthz.
func startHalleyCmd(cmdline string, extra []string, url string) (*halleyServer, error) {
	tmp, err := os.MkdirTemp("", "halley-bench-")
	if err != nil {
		return nil, err
	}
	args := halleyArgs(cmdline, tmp, extra)
	if len(args) == 0 {
		return nil, fmt.Errorf("empty --halley-cmd")
	}
	s := &halleyServer{cmd: exec.Command(args[0], args[1:]...), out: &syncBuffer{max: 64 << 10}, tmp: tmp, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	// Pdeathsig belongs to the forking thread: hold it so a thread exit
	// cannot send the signal early.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dieWithParent(s.cmd, syscall.SIGTERM)
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	cl := http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.done:
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("halley exited at start: %s", lastLines(s.out.String(), 5))
		default:
		}
		resp, err := cl.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("halley not healthy at %s/healthz after 30s: %s", url, lastLines(s.out.String(), 5))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// stop sends SIGTERM, then SIGKILL after 10 s, to this server's own pid.
func (s *halleyServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.tmp)
}

// ezScan reads a compact EZComet frame ["<tick>","<msg>"] without a JSON
// decoder; ok is false when it needs one (an escape, spaces, more
// elements).
func ezScan(frame []byte) (tick, msg []byte, ok bool) {
	if len(frame) < 7 || frame[0] != '[' || frame[1] != '"' || !bytes.HasSuffix(frame, []byte(`"]`)) {
		return nil, nil, false
	}
	in := frame[2 : len(frame)-2] // <tick>","<msg>
	j := bytes.IndexByte(in, '"')
	if j < 0 || !bytes.HasPrefix(in[j:], []byte(`","`)) {
		return nil, nil, false
	}
	tick, msg = in[:j], in[j+3:]
	if bytes.IndexByte(tick, '\\') >= 0 || bytes.IndexByte(msg, '\\') >= 0 || bytes.IndexByte(msg, '"') >= 0 {
		return nil, nil, false
	}
	return tick, msg, true
}

// cfPushScan reads a compact Cometify push frame without a JSON decoder,
// so that the clients, which share the CPUs with the server, spend about
// as little per frame on Cometify as on Nchan's bare bodies. ok is false
// when the frame needs the decoder: an escape in "data", keys spaced or
// missing. An unescaped `"key":` cannot occur inside a JSON string, so a
// match preceded by '{' or ',' is a key of the object.
func cfPushScan(frame []byte) (data []byte, id int64, push, ok bool) {
	key := func(k string) int {
		i := bytes.Index(frame, []byte(k))
		if i <= 0 || (frame[i-1] != '{' && frame[i-1] != ',') {
			return -1
		}
		return i + len(k)
	}
	d := key(`"data":"`)
	if d < 0 {
		// No data: a resume point or a gap signal, unless "data" is
		// there in another form (spaced, or a value).
		return nil, 0, false, !bytes.Contains(frame, []byte(`"data"`))
	}
	n := bytes.IndexByte(frame[d:], '"')
	if n < 0 || bytes.IndexByte(frame[d:d+n], '\\') >= 0 {
		return nil, 0, false, false
	}
	i := key(`"id":`)
	if i < 0 {
		return nil, 0, false, false
	}
	j := i
	for j < len(frame) && '0' <= frame[j] && frame[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(frame[i:j]), 10, 64)
	if err != nil || v < 1 || j == len(frame) || (frame[j] != ',' && frame[j] != '}') {
		return nil, 0, false, false
	}
	return frame[d : d+n], v, true, true
}

// cfSecure is a Cometify push's signature (CF-P-03):
// md5hex(apiKey + md5hex(apiSecret) + identifier + text).
func cfSecure(key, secret, identifier, text string) string {
	inner := md5.Sum([]byte(secret))
	outer := md5.Sum([]byte(key + hex.EncodeToString(inner[:]) + identifier + text))
	return hex.EncodeToString(outer[:])
}

// sinceID reads the id of a one-identifier Cometify resume point
// {"since":"<name>:<id>"}; ok is false for any other frame.
func sinceID(frame []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"since":"`))
	if !ok || !bytes.HasSuffix(rest, []byte(`"}`)) {
		return 0, false
	}
	rest = rest[:len(rest)-2]
	i := bytes.LastIndexByte(rest, ':')
	if i < 0 || bytes.IndexByte(rest, ',') >= 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(rest[i+1:]), 10, 64)
	return v, err == nil && v >= 0
}
