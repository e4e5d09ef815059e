package protocol

// postPush sends a push form to /{key}/push/{ident} and waits for its
// answer.
func (f *cfFixture) postPush(key, ident, body string) reply {
	f.t.Helper()
	c := f.serve("POST", "/"+key+"/push/"+ident, "", body, header{"Content-Type": "application/x-www-form-urlencoded"})
	f.await("push answer", func() bool { return c.numReplies() > 0 })
	return c.lastReply(f.t)
}
