package protocol

import (
	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// Revocation: when an account changes, every loop closes what the
// account's current state no longer admits. Readers and listeners carry
// what admitted them (the account's ID, and for Cometify the cf_api_key
// and secret generations), so the check needs no per-credential index:
// a loop walks only the account's own channels and topics.

// AccountChanged closes, on every loop, username's readers and listeners
// that its account no longer admits: when the account is gone or is
// another incarnation, every EZComet reader of its channels and every
// Cometify listener; when its cf_api_key was rotated, the Cometify
// listeners admitted by the old one; when its secret was rotated, those
// admitted with a secureKey. A WebSocket gets close 1008 "revoked", an
// SSE stream ends, a waiting poll is answered (Cometify 401 "credential
// revoked", EZComet 404 "unknown user"); their slots are freed. Rotating
// the private api_key closes nothing: no reader or listener used it.
//
// Safe from any goroutine (cmd calls it from persist's OnAccountChange);
// it does not wait for the loops. Before Attach it does nothing.
func (a *API) AccountChanged(username string) {
	if a.loops == nil {
		return
	}
	a.loops.Broadcast(func(loop int) { a.state[loop].revoke(username) })
}

// revoke is AccountChanged on one loop.
func (ls *loopState) revoke(username string) {
	acct, exists := ls.api.store.AccountByName(strBytes(username))
	for qname, cs := range ls.subs {
		if !ownedBy(qname, username, '-') {
			continue
		}
		// The end the entry knew may be another incarnation's: no
		// reader is placed there unread (atTail) until a delivery of
		// this one passes it.
		cs.tick = cs.tick[:0]
		// Backwards: a closed reader leaves the list, and removal moves
		// the last entry into its place.
		for i := len(cs.list) - 1; i >= 0; i-- {
			if i >= len(cs.list) {
				continue
			}
			if s := cs.list[i]; !exists || s.acctID != acct.ID {
				ls.revokeEZ(s)
			}
		}
		if len(cs.list) == 0 {
			ls.drop(false, qname) // its seqs may start again from 1 (index.go)
		}
	}
	for topic, ts := range ls.cfTopics {
		if !ownedBy(topic, username, '/') {
			continue
		}
		ts.known = false // as cs.tick above
		for i := len(ts.list) - 1; i >= 0; i-- {
			if i >= len(ts.list) {
				continue
			}
			if s := ts.list[i].s; !exists || !admits(&acct, s) {
				ls.revokeCF(s) // it leaves every topic it watched
			}
		}
		// A topic seen before this one lost no listener to it: a
		// listener not admitted left with its first topic seen.
		if len(ts.list) == 0 {
			ls.drop(true, topic)
		}
	}
}

// ownedBy reports whether name (a qname or topic) is "<user><sep>…".
// Usernames hold neither '-' nor '/'.
func ownedBy(name, user string, sep byte) bool {
	return len(name) > len(user) && name[len(user)] == sep && name[:len(user)] == user
}

// admits reports whether acct, as it is now, still admits listener s.
func admits(acct *persist.Account, s *cfSub) bool {
	return s.acctID == acct.ID && s.keyGen == acct.CFKeyGen && (!s.secure || s.secretGen == acct.SecretGen)
}

func (ls *loopState) revokeEZ(s *ezSub) {
	c, cb, kind := s.conn, s.callback, s.kind
	ls.remove(s)
	ls.closeRevoked(c, kind, cb, errUnknownUser)
}

func (ls *loopState) revokeCF(s *cfSub) {
	c, cb, kind := s.conn, s.callback, s.kind
	ls.removeCF(s)
	ls.closeRevoked(c, kind, cb, errRevoked)
}

// closeRevoked ends a revoked reader or listener, already out of the
// index: a waiting poll gets pollAnswer (JSONP when it asked), a
// WebSocket close 1008, an SSE stream its end.
func (ls *loopState) closeRevoked(c engine.Conn, kind subKind, callback []byte, pollAnswer *apiError) {
	ls.api.stats.revoked.Add(1)
	kind.transport().revoked(ls.api, c, callback, pollAnswer)
}
