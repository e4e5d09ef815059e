package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clientConfig is one forked client process of "bench idle".
type clientConfig struct {
	Target     string
	Kind       string // halley (EZComet read) | cometify (Halley's Cometify listen) | nchan
	Mode       string // ws | longpoll
	QName      string // Halley: qname prefix "<user>-<chan>"; Cometify: identifier prefix; Nchan: channel prefix
	Key        string // Cometify api key (the path's {apiKey})
	FirstIndex int    // global index of this process's first connection
	PerIP      int    // connections per source address
	Channels   int
	DialConc   int
	MaxLife    time.Duration
	Timeout    int // long-poll timeout asked of Halley, seconds
	Reopen     int // times a connection that failed or was lost is opened again, until "freeze"
	readerConfig
}

func clientFlags(fs *flag.FlagSet, c *clientConfig) {
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&c.Kind, "kind", "halley", kindHelp)
	fs.StringVar(&c.Mode, "mode", "ws", "ws or longpoll")
	fs.StringVar(&c.QName, "qname", "demo-bench", "Halley qname prefix (<user>-<chan>); for Cometify and Nchan its \\w characters prefix the identifier / channel id")
	fs.StringVar(&c.Key, "key", "", "Cometify api key (--kind cometify)")
	fs.IntVar(&c.PerIP, "per-ip", 20, "connections per loopback source address")
	fs.IntVar(&c.Channels, "channels", 100, "connection i subscribes to channel i mod channels")
	fs.IntVar(&c.DialConc, "dial-conc", 64, "connections being opened at once per client process")
	fs.DurationVar(&c.MaxLife, "max-life", 5*time.Minute, "client processes exit by themselves after this")
	fs.IntVar(&c.Timeout, "lp-timeout", 120, "Halley long-poll timeout (seconds) asked per request")
}

// reopenFlag is the idle clients' --reopen.
func reopenFlag(fs *flag.FlagSet, n *int, def int) {
	fs.IntVar(n, "reopen", def, "times a connection that failed to open or was lost while opening and settling is opened again (after 1 s, 2 s, …; not once a push is sent); 0: never")
}

func (c *clientConfig) validate() error {
	k, err := kindOf(c.Kind)
	if err != nil {
		return err
	}
	if c.Mode != "ws" && c.Mode != "longpoll" {
		return fmt.Errorf("--mode must be ws or longpoll")
	}
	if c.PerIP < 1 || c.Channels < 1 || c.DialConc < 1 || c.MaxLife <= 0 || c.Reopen < 0 {
		return fmt.Errorf("--per-ip, --channels, --dial-conc must be ≥ 1, --max-life > 0 and --reopen ≥ 0")
	}
	if err := k.checkClient(c); err != nil {
		return err
	}
	_, _, err = hostPort(c.Target)
	return err
}

// kind is the API of --kind (validate has checked it).
func (c *clientConfig) kind() serverKind { return mustKind(c.Kind) }

// checkIdentifierPrefix refuses a prefix that cannot start a Cometify
// identifier (CF-P-01: a letter, then \w, 60 at most; room is left for the
// channel number).
func checkIdentifierPrefix(p string) error {
	id := nchanID(p)
	if id == "" || !('a' <= id[0]|0x20 && id[0]|0x20 <= 'z') || len(id) > 54 {
		return fmt.Errorf("identifier prefix %q: a Cometify identifier starts with a letter, 60 \\w characters at most", p)
	}
	return nil
}

// subPath is the request path of connection g. resume is where a
// long-poll goes on from: Halley's last tick, Cometify's "since" (id-form
// LIST); empty for the first request. Nchan resumes by headers instead.
func (c *clientConfig) subPath(g int, resume string) string {
	return c.kind().subPath(c, g, resume)
}

// clientStats are the counters a client process reports to its parent.
type clientStats struct {
	open   atomic.Int64 // established and held
	failed atomic.Int64 // never established
	closed atomic.Int64 // established, then lost
	// reopened counts the times a failed or lost connection was queued to
	// be opened again (--reopen); it is in none of open, failed, closed
	// until that attempt ends.
	reopened atomic.Int64
	msgs     atomic.Int64 // messages (frames or answers with data) received
	got      atomic.Int64 // connections that received at least one delivery
	last     atomic.Int64 // UnixMicro of the latest delivery (0: none yet)
	// firstErr is the first failure's text, reported once to the parent
	// (accept failures, ENOMEM: why a run stopped short).
	firstErr atomic.Pointer[string]
	// firstLoss is why the first established connection ended, reported
	// once ("lost …").
	firstLoss atomic.Pointer[string]
}

// lose keeps the first reason an established connection ended.
func (s *clientStats) lose(err error) {
	msg := "closed by the server"
	if err != nil && err != io.EOF {
		msg = err.Error()
	}
	s.firstLoss.CompareAndSwap(nil, &msg)
}

// delivered records n deliveries, now, on a connection that had had
// before (deliveries so far): see reached; they are added to s.msgs.
func (s *clientStats) delivered(had, n int64) {
	if n <= 0 {
		return
	}
	s.msgs.Add(n)
	s.reached(had, n, time.Now().UnixMicro())
}

// reached records that a connection which had had deliveries got n more
// at now (UnixMicro): the first makes it count as reached, and the time is
// kept when it is the latest. s.msgs is the caller's to add to.
func (s *clientStats) reached(had, n, now int64) {
	if n <= 0 {
		return
	}
	if had == 0 {
		s.got.Add(1)
	}
	for {
		l := s.last.Load()
		if l >= now || s.last.CompareAndSwap(l, now) {
			return
		}
	}
}

// fail counts a connection never established and keeps the first reason.
func (s *clientStats) fail(err error) {
	s.failed.Add(1)
	s.noteFailure(err)
}

// noteFailure keeps err when it is the first failure to open.
func (s *clientStats) noteFailure(err error) {
	msg := err.Error()
	s.firstErr.CompareAndSwap(nil, &msg)
}

// reopener queues again, after a pause, a connection that failed to open
// or was lost, while the parent is still opening and settling: a browser
// client reconnects so, and on a saturated box a handshake can miss the
// client's deadline or a connection its server's. The parent's "freeze"
// (before a push) ends it: a connection lost after it stays lost, as the
// push's figures count. Each connection is opened at most 1+max times.
type reopener struct {
	max    int
	st     *clientStats
	again  func(g int) // hands g to a dialer
	frozen atomic.Bool
	mu     sync.Mutex
	tries  map[int]int // by connection number: reopens so far
}

func newReopener(max int, st *clientStats, again func(g int)) *reopener {
	return &reopener{max: max, st: st, again: again, tries: map[int]int{}}
}

// retry queues connection g to be opened again and reports whether it
// did: not once frozen or past max reopens of g.
func (r *reopener) retry(g int) bool {
	if r.max <= 0 || r.frozen.Load() {
		return false
	}
	r.mu.Lock()
	t := r.tries[g]
	ok := t < r.max
	if ok {
		r.tries[g] = t + 1
	}
	r.mu.Unlock()
	if !ok {
		return false
	}
	r.st.reopened.Add(1)
	time.AfterFunc(time.Duration(t+1)*time.Second, func() {
		if r.frozen.Load() {
			r.st.failed.Add(1) // frozen meanwhile: it stays down
			return
		}
		r.again(g)
	})
	return true
}

func (s *clientStats) line(target int) string {
	return fmt.Sprintf("stat target=%d open=%d failed=%d closed=%d reopened=%d msgs=%d got=%d last=%d",
		target, s.open.Load(), s.failed.Load(), s.closed.Load(), s.reopened.Load(), s.msgs.Load(), s.got.Load(), s.last.Load())
}

// cmdClient is the hidden "bench client": it holds idle subscribers. stdin
// commands: "open N" (grow this process to N connections), "quit". stdout:
// "stat target=.. open=.. failed=.. closed=.. msgs=.." lines. It exits on
// "quit", on end of stdin (the parent is gone), or after --max-life. On
// Linux the connections are held by epoll readers (--readers), not a
// goroutine each.
func cmdClient(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c clientConfig
	clientFlags(fs, &c)
	reopenFlag(fs, &c.Reopen, 0)
	c.readerConfig.clientFlags(fs)
	fs.IntVar(&c.FirstIndex, "first-index", 0, "global index of the first connection (source addresses)")
	initial := fs.Int("open", 0, "connections to open at start")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(stderr, "bench client:", err)
		return 2
	}
	addr, host, _ := hostPort(c.Target)
	ctx, cancel := context.WithTimeout(context.Background(), c.MaxLife)
	defer cancel()

	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
		close(cmds)
	}()

	var st clientStats
	// --dial-conc goroutines open the connections, taking their numbers
	// from work: not a goroutine each, as Go keeps the descriptor of a
	// goroutine that ended for reuse (hundreds of bytes a connection).
	work := make(chan int)
	re := newReopener(c.Reopen, &st, func(g int) {
		select {
		case work <- g:
		case <-ctx.Done():
		}
	})
	o := epollOptions{OnData: idleWSData(c.kind(), &st)}
	if c.Mode == "longpoll" {
		o = epollOptions{Poll: &lpPoll{c: &c, host: host}}
	}
	o.OnLost = re.retry
	ep := c.readerConfig.epoll(o, &st, stderr)
	for range c.DialConc {
		go func() {
			for g := range work {
				holdConn(ctx, &c, addr, host, g, &st, ep, re)
			}
		}()
	}
	target := 0
	grow := func(n int) {
		if n <= target {
			return
		}
		from, to := c.FirstIndex+target, c.FirstIndex+n
		target = n
		go func() {
			for g := from; g < to; g++ {
				select {
				case work <- g:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	grow(*initial)
	fmt.Fprintln(stdout, "ready")
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := ""
	settled := false
	errSaid, lossSaid := false, false
	report := func() {
		if e := st.firstErr.Load(); e != nil && !errSaid {
			fmt.Fprintf(stdout, "fail %s\n", *e)
			errSaid = true
		}
		if e := st.firstLoss.Load(); e != nil && !lossSaid {
			fmt.Fprintf(stdout, "lost %s\n", *e)
			lossSaid = true
		}
		if l := st.line(target); l != last {
			fmt.Fprintln(stdout, l)
			last = l
		}
	}
	for {
		select {
		case cmd, ok := <-cmds:
			if !ok || cmd == "quit" {
				report()
				return 0
			}
			if cmd == "freeze" {
				re.frozen.Store(true)
				continue
			}
			if v, ok := strings.CutPrefix(cmd, "open "); ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 0 {
					fmt.Fprintf(stderr, "bench client: bad command %q\n", cmd)
					continue
				}
				if n > target {
					settled = false
				}
				grow(n)
			}
		case <-ctx.Done():
			fmt.Fprintln(stdout, "exit max-life")
			return 0
		case <-tick.C:
			report()
			if !settled && int(st.open.Load()+st.failed.Load()+st.closed.Load()) >= target {
				// All up: return the dial-time garbage and shrink stacks,
				// so the clients' own RSS reflects what they hold.
				debug.FreeOSMemory()
				settled = true
			}
		}
	}
}

// holdConn opens connection g and holds it until it breaks or ctx ends:
// handed to ep's readers, or (ep nil) in a goroutine of its own. re opens
// it again when it fails or is lost, while it may.
func holdConn(ctx context.Context, c *clientConfig, addr, host string, g int, st *clientStats, ep *epollSubs, re *reopener) {
	conn, br, err := openSub(ctx, c, addr, host, g, "")
	if err != nil {
		if ctx.Err() == nil && re.retry(g) {
			st.noteFailure(err)
		} else {
			st.fail(err)
		}
		return
	}
	st.open.Add(1)
	if ep != nil {
		if err := ep.add(g, conn, br); err != nil {
			st.lose(err)
			st.open.Add(-1)
			if !re.retry(g) {
				st.closed.Add(1)
			}
		}
		return
	}
	// Hold in a fresh goroutine: its stack starts small, where this one's
	// grew while dialing.
	go func() {
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		var err error
		if c.Mode == "ws" {
			err = wsHoldDeliveries(conn, br, c.kind(), st)
		} else {
			err = lpHold(conn, br, c, host, g, st)
		}
		conn.Close()
		st.open.Add(-1)
		if ctx.Err() == nil {
			st.lose(err)
			if re.retry(g) {
				return
			}
		}
		st.closed.Add(1)
	}()
}

// browserKeepAlive is the TCP keep-alive of the subscribers' sockets:
// Chromium's (45 s idle, then every 45 s; net/socket/tcp_socket_posix.cc),
// where Go's dialer default probes every 15 s. A million idle sockets
// probing every 15 s send ~66,000 probes a second, each answered by the
// server's kernel: load no browser audience makes (Firefox waits 10
// minutes).
var browserKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 45 * time.Second, Interval: 45 * time.Second, Count: 9}

// openSub dials from the connection's own source address and makes the
// subscription: a WebSocket handshake, or the first long-poll request.
// resume (WebSocket) is where the subscription goes on from, as subPath's.
func openSub(ctx context.Context, c *clientConfig, addr, host string, g int, resume string) (net.Conn, *bufio.Reader, error) {
	ip, err := sourceIP(g, c.PerIP)
	if err != nil {
		return nil, nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}, KeepAliveConfig: browserKeepAlive}
	var conn net.Conn
	for attempt := 0; ; attempt++ {
		conn, err = d.DialContext(ctx, "tcp", addr)
		if err == nil {
			break
		}
		if attempt == 4 || ctx.Err() != nil {
			return nil, nil, err
		}
		time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
	}
	br := bufio.NewReaderSize(conn, 512)
	if c.Mode == "longpoll" {
		if _, err := conn.Write(appendLPRequest(nil, c, host, g, "", "", "")); err != nil {
			conn.Close()
			return nil, nil, err
		}
		return conn, br, nil
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	key := wsKey()
	req := "GET " + c.subPath(g, resume) + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, err
	}
	var r response
	if err := readResponse(br, &r, 0, true); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if r.status != 101 {
		conn.Close()
		return nil, nil, fmt.Errorf("websocket handshake: status %d", r.status)
	}
	if r.accept != wsAccept(key) {
		conn.Close()
		return nil, nil, fmt.Errorf("websocket handshake: bad Sec-WebSocket-Accept %q", r.accept)
	}
	if h := c.kind().hello(); h != nil {
		if err := sayHello(conn, br, h); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// sayHello sends a WebSocket subscriber's first frame and waits for the
// server's answer (the first data frame); an answer holding "error" is a
// refusal.
func sayHello(conn net.Conn, br *bufio.Reader, hello []byte) error {
	if _, err := conn.Write(wsFrame(0x1, hello)); err != nil {
		return err
	}
	for {
		op, p, err := readWSFrame(br)
		if err != nil {
			return fmt.Errorf("websocket hello: %v", err)
		}
		switch op {
		case 0x9:
			conn.Write(wsFrame(0xA, p))
		case 0x8:
			return fmt.Errorf("websocket hello: closed by the server")
		case 0x1, 0x2:
			if bytes.Contains(p, []byte(`"error"`)) {
				return fmt.Errorf("websocket hello refused: %.200s", p)
			}
			return nil
		}
	}
}

// readWSFrame reads one whole frame (a fragment counts as one) from br.
func readWSFrame(br *bufio.Reader) (op byte, p []byte, err error) {
	var h [14]byte
	if _, err := io.ReadFull(br, h[:2]); err != nil {
		return 0, nil, err
	}
	hdr, _, _ := wsHeader(h[:2])
	if _, err := io.ReadFull(br, h[2:hdr]); err != nil {
		return 0, nil, err
	}
	_, total, _ := wsHeader(h[:hdr])
	if total-int64(hdr) > 1<<20 {
		return 0, nil, errWSTooLong
	}
	p = make([]byte, total-int64(hdr))
	if _, err := io.ReadFull(br, p); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		for i := range p {
			p[i] ^= h[hdr-4+i%4]
		}
	}
	return h[0] & 0x0f, p, nil
}

func wsKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// wsAccept is the Sec-WebSocket-Accept value for key (RFC 6455).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsFrame is a masked client frame (mask key zero: the payload is unchanged).
func wsFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}
	return append(b, payload...)
}

// wsHold reads frames until the connection ends: pings are answered with
// pongs, a close is echoed, data frames are counted and discarded.
func wsHold(conn net.Conn, br *bufio.Reader, st *clientStats) error {
	return wsHoldFunc(conn, br, st, nil)
}

// wsHoldDeliveries is wsHold counting deliveries as kind k reads them
// (not a resume point, a gap signal; a frame may hold several), so that a
// push reaching the connection is told from the server's own frames.
func wsHoldDeliveries(conn net.Conn, br *bufio.Reader, k serverKind, st *clientStats) error {
	var had int64
	return wsHoldFunc(conn, br, st, func(frame []byte) int64 {
		n := frameDeliveries(k, frame)
		st.reached(had, n, time.Now().UnixMicro())
		had += n
		return n
	})
}

// wsHoldFunc is wsHold; when onData is set, each complete data message
// (fragments joined) is passed to it instead of being discarded, and
// st.msgs counts the deliveries onData says the message held (not a
// server's own frames: a resume point, a gap signal; a frame may hold
// several). The slice is reused after onData returns.
func wsHoldFunc(conn net.Conn, br *bufio.Reader, st *clientStats, onData func([]byte) int64) error {
	var hdr [8]byte
	var msg []byte
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return err
		}
		fin, op, masked := hdr[0]&0x80 != 0, hdr[0]&0x0f, hdr[1]&0x80 != 0
		n := int64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(br, hdr[:8]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint64(hdr[:8]) & (1<<62 - 1))
		}
		var mask [4]byte
		if masked {
			if _, err := io.ReadFull(br, mask[:]); err != nil {
				return err
			}
		}
		switch op {
		case 0x9, 0x8: // ping, close: control frames, ≤ 125 bytes
			if n > 125 {
				return errors.New("websocket: control frame too long")
			}
			p := make([]byte, n)
			if _, err := io.ReadFull(br, p); err != nil {
				return err
			}
			if masked {
				for i := range p {
					p[i] ^= mask[i%4]
				}
			}
			if op == 0x8 {
				if len(p) > 2 {
					p = p[:2]
				}
				conn.Write(wsFrame(0x8, p))
				return io.EOF
			}
			if _, err := conn.Write(wsFrame(0xA, p)); err != nil {
				return err
			}
		default:
			if onData != nil && op != 0xA {
				if n > 1<<24 {
					return errors.New("websocket: message too long")
				}
				old := len(msg)
				msg = append(msg, make([]byte, n)...)
				if _, err := io.ReadFull(br, msg[old:]); err != nil {
					return err
				}
				if masked {
					for i := range msg[old:] {
						msg[old+i] ^= mask[i%4]
					}
				}
			} else {
				for n > 0 {
					k, err := br.Discard(int(min(n, 1<<30)))
					n -= int64(k)
					if err != nil {
						return err
					}
				}
			}
			if fin && op != 0xA {
				if onData == nil {
					st.msgs.Add(1)
				} else {
					st.msgs.Add(onData(msg))
				}
				msg = msg[:0]
			}
		}
	}
}

// appendLPRequest appends a long-poll request to dst. Halley resumes by
// tick, Cometify by "since" (both in resume); Nchan by its Last-Modified /
// Etag pair.
func appendLPRequest(dst []byte, c *clientConfig, host string, g int, resume, lastMod, etag string) []byte {
	b := append(dst, "GET "...)
	b = append(b, c.subPath(g, resume)...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	if lastMod != "" {
		b = append(b, "If-Modified-Since: "...)
		b = append(b, lastMod...)
		b = append(b, "\r\n"...)
	}
	if etag != "" {
		b = append(b, "If-None-Match: "...)
		b = append(b, etag...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// lpHold waits for the answer to the long-poll already sent and re-issues
// it, until the connection ends or an answer is an error (the goroutine
// per connection client; epoll readers do the same with lpConn).
func lpHold(conn net.Conn, br *bufio.Reader, c *clientConfig, host string, g int, st *clientStats) error {
	var r response
	var p lpProgress
	var req []byte
	for {
		if err := readResponse(br, &r, lpKeep, false); err != nil {
			return err
		}
		n, err := p.answered(&r, c.kind(), st, time.Now().UnixMicro())
		st.msgs.Add(n)
		if err != nil {
			return err
		}
		req = p.request(req[:0], c, host, g)
		if _, err := conn.Write(req); err != nil {
			return err
		}
	}
}
