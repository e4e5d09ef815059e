package protocol

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"hash"
	"time"

	"github.com/halleypush/halley/persist"
)

// How a Cometify push proves who sent it: CF-P-03's md5 `secure`, CF-P-10's
// HMAC-SHA256 `signature` with its `ts` and `nonce`, or both. The md5
// covers neither `secret` nor `push_id` and can be replayed for ever; the
// signature covers every field, expires after signatureSkew and, through
// its nonce (which the store records, persist.NonceMemory), is accepted
// once.

const (
	maxNonce = 64
	// signatureSkew is how far, in seconds, a signature's ts may be from
	// the server's clock either way.
	signatureSkew = 300
)

// pushAuth is what a push's form offers to authenticate it. Its shape is
// checked (400) when it is parsed, before anything is verified (403):
// C-04's order.
type pushAuth struct {
	secure    []byte // CF-P-03's md5 hex, when hasSecure (an empty one is sent)
	hasSecure bool
	signed    bool   // signature, ts and nonce are all given and well-formed
	signature []byte // CF-P-10's HMAC hex
	ts, nonce []byte // as sent: the signature covers them so
	tsSec     uint64
}

// parsePushAuth reads secure, signature, ts and nonce from f. A push needs
// secure, or signature with ts and nonce, or both; signature, ts and nonce
// go together, so one or two of them alone is a 400, as is a ts or nonce
// that breaks its form. A signature that is not 64 hex digits is only
// wrong (403, at verification), as a malformed secure is.
func parsePushAuth(f *form) (pushAuth, *apiError) {
	var p pushAuth
	p.secure, p.hasSecure = f.get("secure")
	sig, hasSig := f.get("signature")
	ts, hasTS := f.get("ts")
	nonce, hasNonce := f.get("nonce")
	switch {
	case !hasSig && !hasTS && !hasNonce:
		if !p.hasSecure {
			return p, errMissingSecure
		}
		return p, nil
	case !hasSig || !hasTS || !hasNonce:
		return p, errSignatureFields
	}
	var ok bool
	if p.tsSec, ok = parseUint63(ts); !ok {
		return p, errBadTS
	}
	if !validNonce(nonce) {
		return p, errBadNonce
	}
	p.signed, p.signature, p.ts, p.nonce = true, sig, ts, nonce
	return p, nil
}

// validNonce: 1..64 chars of [A-Za-z0-9_-] (CF-P-10).
func validNonce(b []byte) bool {
	if len(b) == 0 || len(b) > maxNonce {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// pushFields are the form values a push's signatures cover, as sent.
type pushFields struct {
	ident, secret, pushID, text []byte
}

// verifyPush checks a push's credentials against acct (the 403s of
// CF-P-03, CF-P-10): an account that requires signatures refuses a push
// without one; a signature must match and be fresh; an md5 secure, when
// sent, must match too. It returns the md5 digest the store records for
// CF-P-09 (valid when p.hasSecure). sg and ls are the loop's scratch.
func (a *API) verifyPush(ls *loopState, sg *hmacSigner, acct *persist.Account, p *pushAuth, f *pushFields) ([md5.Size]byte, *apiError) {
	var digest [md5.Size]byte
	if acct.RequireSignature != "" && !p.signed {
		return digest, errSignatureRequired
	}
	if p.signed {
		sg.head = appendSignedHead(sg.head[:0], acct.CFAPIKey, f, p.ts, p.nonce)
		if !sg.verify(p.signature, acct.APISecret, sg.head, f.text) {
			return digest, errBadSignature
		}
		if !fresh(p.tsSec, a.opts.Now()) {
			return digest, errSignatureExpired
		}
	}
	if p.hasSecure {
		ls.sig = pushSignature(ls.sig[:0], acct.CFAPIKey, acct.APISecret, f.ident, f.text)
		if !decodeHex(digest[:], p.secure) {
			return digest, errBadSecure
		}
		if sum := md5.Sum(ls.sig); !hmac.Equal(sum[:], digest[:]) {
			return digest, errBadSecure
		}
	}
	return digest, nil
}

// appendSignedHead appends what CF-P-10's signature covers before the
// text: cf_api_key "\n" identifier "\n" secret "\n" push_id "\n" ts "\n"
// nonce "\n", each as sent (push_id empty when absent).
func appendSignedHead(dst []byte, cfKey string, f *pushFields, ts, nonce []byte) []byte {
	dst = append(dst, cfKey...)
	for _, v := range [...][]byte{f.ident, f.secret, f.pushID, ts, nonce} {
		dst = append(dst, '\n')
		dst = append(dst, v...)
	}
	return append(dst, '\n')
}

// fresh reports whether ts (unix seconds) is within signatureSkew of
// now, either way. Both are at most 2^63-1, so the unsigned differences
// cannot wrap; a clock before 1970 counts as 1970.
func fresh(ts uint64, now time.Time) bool {
	n := uint64(max(now.Unix(), 0))
	if ts >= n {
		return ts-n <= signatureSkew
	}
	return n-ts <= signatureSkew
}

// hmacSigner computes HMAC-SHA256 (RFC 2104) over a head and a text
// without allocating: crypto/hmac allocates a new state for every key, and
// every account has its own. One per event loop (API.signers), used only
// by that loop.
type hmacSigner struct {
	h     hash.Hash
	key   [sha256.BlockSize]byte // K0: the secret, zero-padded (hashed first when longer)
	pad   [sha256.BlockSize]byte
	inner [sha256.Size]byte
	mac   [sha256.Size]byte
	given [sha256.Size]byte
	head  []byte // the signed fields before the text
	long  []byte // a secret longer than a block, to hash
}

func newHMACSigner() *hmacSigner { return &hmacSigner{h: sha256.New()} }

// sum returns HMAC-SHA256(secret, head || text), valid until the next call.
func (s *hmacSigner) sum(secret string, head, text []byte) []byte {
	s.key = [sha256.BlockSize]byte{}
	if len(secret) > len(s.key) {
		s.long = append(s.long[:0], secret...)
		s.h.Reset()
		s.h.Write(s.long)
		s.h.Sum(s.key[:0])
	} else {
		copy(s.key[:], secret)
	}
	for i, k := range s.key {
		s.pad[i] = k ^ 0x36
	}
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(head)
	s.h.Write(text)
	s.h.Sum(s.inner[:0])
	for i, k := range s.key {
		s.pad[i] = k ^ 0x5c
	}
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(s.inner[:])
	return s.h.Sum(s.mac[:0])
}

// verify reports, in constant time for well-formed input, whether given
// is the hex (either case) of HMAC-SHA256(secret, head || text).
func (s *hmacSigner) verify(given []byte, secret string, head, text []byte) bool {
	if !decodeHex(s.given[:], given) {
		return false
	}
	return hmac.Equal(s.sum(secret, head, text), s.given[:])
}
