package protocol

import (
	"errors"
	"strconv"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// apiError is one row of the error table (SPEC C-03, C-04). Every error
// the API can answer is a named value below, so the wire, the
// conformance suite and docs/protocol.md agree.
type apiError struct {
	status int
	msg    string
	body   []byte // {"code":"error","msg":...,"status":...}, rendered once
}

func newAPIError(status int, msg string) *apiError {
	e := &apiError{status: status, msg: msg}
	e.body = e.render(nil)
	return e
}

func (e *apiError) render(dst []byte) []byte {
	dst = append(dst, `{"code":"error","msg":`...)
	dst = appendJSONString(dst, []byte(e.msg))
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(e.status), 10)
	return append(dst, '}')
}

func (e *apiError) Error() string { return e.msg }

// The error table.
var (
	errBadRequest   = newAPIError(400, "malformed request")
	errBadParams    = newAPIError(400, "malformed parameters")
	errDupParam     = newAPIError(400, "parameter given more than once")
	errBadEncoding  = newAPIError(400, "bad percent-encoding")
	errBadUTF8      = newAPIError(400, "value is not valid UTF-8 or contains NUL")
	errMissingQName = newAPIError(400, "qname is required")
	errBadQName     = newAPIError(400, "qname must be <username>-<channel>, channel of [A-Za-z0-9._~-], at most 64 bytes")
	errMissingMsg   = newAPIError(400, "msg is required unless flush=1")
	errBadTick      = newAPIError(400, "tick must be 1..64 bytes of printable ASCII")
	errBadTimeout   = newAPIError(400, "timeout must be a decimal integer 0..120")
	errBadCallback  = newAPIError(400, "callback must match ^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$")
	errBadUpgrade   = newAPIError(400, "not a valid WebSocket upgrade")

	// Cometify (SPEC sections 4 and 5).
	errBadIdentifier      = newAPIError(400, "identifier must match ^[a-zA-Z][a-zA-Z0-9_]{0,59}$")
	errMissingIdentifier  = newAPIError(400, "identifier is required")
	errIdentifierMismatch = newAPIError(400, "identifier must equal the path's identifier")
	errMissingIdentifiers = newAPIError(400, "identifiers is required")
	errBadList            = newAPIError(400, "identifiers must be a,b or a:ID,b:ID: valid names, one form, each name once, ids 0..2^63-1")
	errTooManyIdentifiers = newAPIError(400, "too many identifiers")
	errBadSecret          = newAPIError(400, "secret must be 0 or 1")
	errMissingText        = newAPIError(400, "text is required")
	errMissingSecure      = newAPIError(400, "secure is required, unless signature, ts and nonce are given")
	errBadPushID          = newAPIError(400, "push_id must be a decimal integer 1..2^63-1")
	errTextTooLarge       = newAPIError(413, "text is larger than 65536 bytes")
	errBadSecure          = newAPIError(403, "secure does not match")
	errSecretReplay       = newAPIError(403, "secure already used by a secret push")
	// CF-P-10's HMAC-SHA256 signature: signature, ts and nonce come
	// together (one or two of them alone is a 400, as a malformed ts or
	// nonce is); a wrong signature, a stale ts, a reused nonce, or an md5
	// push to an account that requires signatures is a 403.
	errSignatureFields   = newAPIError(400, "signature, ts and nonce must be given together")
	errBadTS             = newAPIError(400, "ts must be unix seconds, a decimal integer")
	errBadNonce          = newAPIError(400, "nonce must be 1..64 chars of [A-Za-z0-9_-]")
	errBadSignature      = newAPIError(403, "signature does not match")
	errSignatureExpired  = newAPIError(403, "ts is more than 300 s away from the server's clock")
	errNonceReused       = newAPIError(403, "nonce already used")
	errSignatureRequired = newAPIError(403, "this account accepts only pushes with signature, ts and nonce")

	errBadSecureKey     = newAPIError(403, "secureKey does not match")
	errPushConflict     = newAPIError(409, "push_id is not above the highest accepted, or reused with a different text")
	errTooManyListeners = newAPIError(429, "too many listeners from this IP")
	errPipelineFlood    = newAPIError(429, "too many pipelined bytes while a request was pending")
	errTooManyConns     = newAPIError(429, engine.FailTooManyConns)
	errMissingAuth      = newAPIError(401, "Authorization: Bearer <api_secret> is required")
	errBadAuth          = newAPIError(403, "wrong api_secret")
	errMissingKey       = newAPIError(401, "api_key is required")
	errUnknownKey       = newAPIError(401, "unknown api_key")
	errRevoked          = newAPIError(401, "credential revoked") // writes, pushes, and listeners a change closed
	errNotOwner         = newAPIError(403, "qname does not belong to this api_key")
	errNotFound         = newAPIError(404, "not found")
	errUnknownUser      = newAPIError(404, "unknown user")
	errMethod           = newAPIError(405, "method not allowed")
	errTimeout          = newAPIError(408, "request header timeout")
	errTickConflict     = newAPIError(409, "tick already queued with a different msg")
	errMsgTooLarge      = newAPIError(413, "msg is larger than 4096 bytes")
	errBodyTooLarge     = newAPIError(413, "request body too large")
	errHeadersTooLarge  = newAPIError(431, "request header fields too large")
	errBadVersion       = newAPIError(505, "HTTP version not supported")
	errStorage          = newAPIError(503, "storage unavailable")
	errShuttingDown     = newAPIError(503, "shutting down")

	// Listeners (issue 15)
	errUpgradeVersion = newAPIError(426, "Sec-WebSocket-Version must be 13")

	// Demo (issue 15)
	errDemoNotLoopback    = newAPIError(403, "the demo page and its endpoints answer loopback clients only (halley serve --demo opens them to every client)")
	errDemoForwarded      = newAPIError(403, "the demo endpoints refuse a request forwarded by a proxy that is not a --trusted-proxy")
	errDemoHost           = newAPIError(403, "the demo endpoints answer only a loopback Host (localhost, 127.0.0.1, [::1])")
	errDemoOrigin         = newAPIError(403, "the demo endpoints answer only their own page's origin")
	errDemoMissingChannel = newAPIError(400, "channel is required")
	errDemoBadChannel     = newAPIError(400, "channel must be of [A-Za-z0-9._~-], at most 64 bytes with the demo user name and '-'")
	errDemoMissingMsg     = newAPIError(400, "msg is required")
)

// engineErrors are the rows Fail answers: the engine's status and
// message pick one (C-03, C-12). Their messages are the engine's own.
var engineErrors = [...]*apiError{
	errBadRequest, errTimeout, errBodyTooLarge, errHeadersTooLarge, errBadVersion,
	errPipelineFlood, errTooManyConns, errShuttingDown,
}

// errorForStatus maps an engine-level failure (Handler.Fail) to its row
// by status and message. A pair the table does not know yet (an engine
// message added later) is rendered as the engine gave it: the client
// still gets C-03's JSON with the engine's status and words.
func errorForStatus(status int, msg string) *apiError {
	for _, e := range engineErrors {
		if e.status == status && e.msg == msg {
			return e
		}
	}
	if status < 400 || status > 599 {
		status = 500
	}
	if msg == "" {
		msg = "error"
	}
	return newAPIError(status, msg)
}

// storeRefusal is how the client is answered when the store refuses a
// write or push for one of its reasons (not a storage fault).
type storeRefusal struct {
	err    error // a persist sentinel, matched with errors.Is
	answer *apiError
}

var (
	writeRefusals = []storeRefusal{
		{persist.ErrTickConflict, errTickConflict},
		{persist.ErrRevoked, errRevoked},
	}
	pushRefusals = []storeRefusal{
		{persist.ErrPushConflict, errPushConflict},
		{persist.ErrSecretReplay, errSecretReplay},
		{persist.ErrNonceReused, errNonceReused},
		{persist.ErrRevoked, errRevoked},
	}
)

// refusalOf finds err in table: its answer and the sentinel it matched,
// or nil, nil when err is nil or a storage fault (503, logged by the
// caller).
func refusalOf(err error, table []storeRefusal) (*apiError, error) {
	if err == nil {
		return nil, nil
	}
	for _, r := range table {
		if errors.Is(err, r.err) {
			return r.answer, r.err
		}
	}
	return nil, nil
}
