package protocol

import (
	"net/url"
	"testing"
)

// TestKeysPublicPrivate is A-01: the private api_key writes (EZComet) and
// is never accepted in a URL path; the public cf_api_key is what every
// Cometify path and signature uses, and never writes (EZ-W-01, CF-P-07,
// CF-L-09, X-03).
func TestKeysPublicPrivate(t *testing.T) {
	f := newCFFixture(t, Options{})
	priv, pub, secret := f.acct.APIKey, f.acct.CFAPIKey, f.acct.APISecret
	if priv == pub {
		t.Fatal("the fixture's account has one key for both APIs")
	}
	pushBody := func(key, text string) string {
		return "identifier=chat&secret=0&text=" + url.QueryEscape(text) + "&secure=" + md5hex(key+md5hex(secret)+"chat"+text)
	}

	t.Run("write with the public key", func(t *testing.T) {
		c := f.serve("GET", "/write", "api_key="+pub+"&qname=john-chat&msg=hi", "", nil)
		f.await("write answer", func() bool { return c.numReplies() > 0 })
		wantError(t, c.lastReply(t), 401, "unknown api_key")
		if got := f.write("qname=john-chat&msg=hi"); got.status != 200 {
			t.Fatalf("write with the private key: %d %s", got.status, got.body)
		}
	})
	t.Run("push with the private key in the path", func(t *testing.T) {
		// Signed as a holder of the private key would sign it, and as the
		// public key's formula says: both refused before any check.
		wantError(t, f.postPush(priv, "chat", pushBody(priv, "x")), 401, "unknown api_key")
		wantError(t, f.postPush(priv, "chat", pushBody(pub, "x")), 401, "unknown api_key")
		if r := f.postPush(pub, "chat", pushBody(pub, "x")); r.status != 200 {
			t.Fatalf("push with the public key: %d %s", r.status, r.body)
		}
	})
	t.Run("push signed with the private key", func(t *testing.T) {
		// CF-P-03: secure is computed over the cf_api_key.
		wantError(t, f.postPush(pub, "chat", pushBody(priv, "x")), 403, "secure does not match")
	})
	for _, kind := range []string{"listen", "poll", "sse"} {
		t.Run(kind+" with the private key in the path", func(t *testing.T) {
			c := f.serve("GET", "/"+priv+"/"+kind, "identifiers=chat&timeout=0", "", nil)
			wantError(t, c.lastReply(t), 401, "unknown api_key")
			if c.upgraded || c.streaming || c.held != 0 {
				t.Fatalf("%s admitted with the private key", kind)
			}
		})
	}
	t.Run("secureKey signed with the private key", func(t *testing.T) {
		sk := md5hex(priv + secret + md5hex("chat"))
		c := f.listen("listen", "identifiers=chat&secureKey="+sk, "10.7.0.1", nil)
		wantError(t, c.lastReply(t), 403, "secureKey does not match")
		if c.upgraded {
			t.Fatal("upgraded with a secureKey over the private key")
		}
	})
	t.Run("stats with the private key in the path", func(t *testing.T) {
		c := f.serve("GET", "/"+priv+"/stats", "", "", header{"Authorization": "Bearer " + secret})
		wantError(t, c.lastReply(t), 401, "unknown api_key")
		c = f.serve("GET", "/"+pub+"/stats", "", "", header{"Authorization": "Bearer " + secret})
		if r := c.lastReply(t); r.status != 200 {
			t.Fatalf("stats with the public key: %d %s", r.status, r.body)
		}
	})
}
