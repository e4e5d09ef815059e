package control

import (
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/halleypush/halley/persist"
)

// backupTimeout bounds how long the client waits for a backup's reply:
// generous, as a checkpoint copied to another filesystem moves the whole
// store, yet finite, as a server on a stalled disk never answers.
const backupTimeout = time.Hour

// Call sends req to the server listening on the control socket at path.
// reached is false when nothing listens there (no server runs on that
// data directory); err is then nil.
func Call(path string, req Request) (rep Reply, reached bool, err error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return Reply{}, false, nil
	}
	defer c.Close()
	timeout := exchangeTimeout
	if req.Op == "backup" {
		timeout = backupTimeout
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Reply{}, true, fmt.Errorf("control: send: %w", err)
	}
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return Reply{}, true, fmt.Errorf("control: read reply (see the server's log): %w", err)
	}
	return rep, true, nil
}

// Result is what Do did.
type Result struct {
	Reply
	// Served is true when a running server ran the command, false when
	// Do opened the stopped data directory itself.
	Served bool
	// Migrated lists the accounts that Do's own Open converted to
	// separate keys (persist.Store.Migrated), whose new private keys the
	// caller must show once.
	Migrated []persist.Account
}

// Do runs req on the data directory dir: through the control socket of
// the server running there, or, when none answers, by opening the store
// itself (Pebble's lock makes that fail if a server runs but its socket
// is unreachable, which is the right answer).
func Do(dir string, req Request) (Result, error) {
	rep, reached, err := Call(SocketPath(dir), req)
	if reached {
		return Result{Reply: rep, Served: true}, err
	}
	// A CLI command has no business sweeping retention.
	store, err := persist.Open(persist.Options{Dir: dir, SweepInterval: -1})
	if err != nil {
		return Result{}, fmt.Errorf("open %s (is a server running without its control socket?): %w", dir, err)
	}
	res := Result{Reply: Apply(store, req), Migrated: store.Migrated()}
	if err := store.Close(); err != nil {
		return res, fmt.Errorf("close store: %w", err)
	}
	return res, nil
}

// Running reports whether a server answers on the control socket of the
// data directory dir.
func Running(dir string) bool {
	c, err := net.DialTimeout("unix", SocketPath(dir), 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
