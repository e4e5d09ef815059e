package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/halleypush/halley/persist"
)

// SocketName is the control socket's file name inside the data
// directory. The name predates the package; it stays, as the docs, the
// conformance suite and operators' scripts know it.
const SocketName = "admin.sock"

// SocketPath is the control socket of the data directory dir.
func SocketPath(dir string) string { return filepath.Join(dir, SocketName) }

// exchangeTimeout bounds reading a request and writing its reply, and
// how long a client waits for an account command's reply: the socket sees
// a handful of calls a day, and a peer that neither sends nor reads must
// not hold a goroutine. A backup's client waits longer (backupTimeout).
const exchangeTimeout = 10 * time.Second

// Server serves the control socket of one running server.
type Server struct {
	ln    net.Listener
	path  string
	store *persist.Store
	log   *slog.Logger

	// mu guards conns, the connections whose request is still being
	// read, which Close cuts short.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	// running counts the commands in progress; Close waits for them.
	running sync.WaitGroup
}

// Listen serves the control socket at path (normally SocketPath of the
// store's data directory) for store until Close. The caller holds the
// store open at least until Close has returned.
func Listen(path string, store *persist.Store, log *slog.Logger) (*Server, error) {
	// A socket file left by a killed server is stale: nothing else can
	// serve it while we hold the store's lock.
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", path, err)
	}
	// The socket lives in the data directory (0700, C-14), so no other
	// user reaches it; the mode and the peer check are the second and
	// third lines of defence.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: chmod %s: %w", path, err)
	}
	s := &Server{ln: ln, path: path, store: store, log: log, conns: map[net.Conn]struct{}{}}
	go s.acceptLoop()
	return s, nil
}

// Close stops accepting commands, cuts short the ones still being sent,
// waits for those running (a backup in progress completes first: the
// store must not close under its checkpoint) and removes the socket.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.running.Wait()
	_ = os.Remove(s.path)
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		// Set under mu, so that Close's cut, also under mu, comes after.
		_ = c.SetDeadline(time.Now().Add(exchangeTimeout))
		s.conns[c] = struct{}{}
		s.running.Add(1)
		s.mu.Unlock()
		// One short-lived goroutine per command, not per client
		// connection: the socket sees a handful of calls a day.
		go func() {
			defer s.running.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

// serve reads one request from c, runs it and answers.
func (s *Server) serve(c net.Conn) {
	req, err := s.readRequest(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	switch {
	case errors.Is(err, io.EOF):
		return // a probe (Running) that sent nothing
	case err != nil:
		s.log.Warn("control socket: refused a command", "err", err)
		return
	}
	if req.Op == "backup" {
		// A checkpoint of a large store copied to another filesystem may
		// take minutes; the client waits up to backupTimeout.
		_ = c.SetDeadline(time.Time{})
	}
	rep := Apply(s.store, req)
	switch {
	case rep.Error != "":
		s.log.Info("control command failed", "op", req.Op, "name", req.Name, "dest", req.Dest, "err", rep.Error)
	case req.Op == "backup":
		s.log.Info("backup written", "dest", req.Dest)
	}
	_ = c.SetWriteDeadline(time.Now().Add(exchangeTimeout))
	_ = json.NewEncoder(c).Encode(rep)
}

// readRequest checks the peer and decodes its one request line.
func (s *Server) readRequest(c net.Conn) (Request, error) {
	var req Request
	if err := checkPeer(c); err != nil {
		return req, err
	}
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return req, fmt.Errorf("control: read request: %w", err)
	}
	return req, nil
}
