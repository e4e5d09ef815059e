package protocol

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/halleypush/halley/engine"
	"github.com/halleypush/halley/persist"
)

// TestRecycledOpsKeepChannelsApart: a write's or push's op and buffer are
// reused by a later one once its group ran (writeOp.recycle,
// pushOp.recycle), while the store may still hold a channel's or topic's
// pending state from it (a new one whose next group is in flight).
// Pipelined publishes from several connections to many new channels
// (topics) of equal-length names, fsync on so that groups overlap: every
// channel must hold exactly its own messages, in order, none lost. It
// fails when the store keys a new channel's or topic's pending state by
// the publish's own bytes (persist's committer.pending and pendingTopic
// without their copy): messages land under another name.
func TestRecycledOpsKeepChannelsApart(t *testing.T) {
	for _, api := range []string{"ez", "cf"} {
		t.Run(api, func(t *testing.T) { testRecycledOps(t, api == "cf") })
	}
}

func testRecycledOps(t *testing.T, cf bool) {
	rs := startRealServer(t, persist.Options{SweepInterval: -1}, engine.Options{Loops: 2})
	if _, err := rs.store.AddAccount("john"); err != nil {
		t.Fatal(err)
	}
	acct, _ := rs.store.AccountByName([]byte("john"))
	request := func(dst []byte, ch, c, i int) []byte {
		msg := fmt.Sprintf("c%03d.%d.%04d", ch, c, i)
		if cf {
			ident := fmt.Sprintf("c%03d", ch)
			sig := md5hex(acct.CFAPIKey + md5hex(acct.APISecret) + ident + msg)
			body := "identifier=" + ident + "&secret=0&text=" + msg + "&secure=" + sig
			return fmt.Appendf(dst, "POST /%s/push/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", acct.CFAPIKey, ident, len(body), body)
		}
		body := fmt.Sprintf("api_key=%s&qname=john-c%03d&msg=%s", acct.APIKey, ch, msg)
		return fmt.Appendf(dst, "POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	stored := func(ch int) [][]byte {
		var out [][]byte
		if cf {
			res, err := rs.store.CFRead(fmt.Appendf(nil, "john/c%03d", ch), 0, 0, persist.ReadLimit{Bytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range res.Pushes {
				out = append(out, p.Text)
			}
			return out
		}
		res, err := rs.store.EZReadAfter(fmt.Sprintf("john-c%03d", ch), 0, persist.ReadLimit{Messages: 10000, Bytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			out = append(out, m.Body)
		}
		return out
	}

	const conns, perConn, channels, depth = 4, 600, 97, 16
	var wg sync.WaitGroup
	for c := range conns {
		conn := rs.dialFrom("127.0.0.1")
		defer conn.Close()
		br := bufio.NewReader(conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// depth requests in flight per connection: the engine serves
			// them while earlier ones wait for their commit.
			var batch []byte
			for i := range perConn {
				batch = request(batch, (c*perConn+i)%channels, c, i)
				if (i+1)%depth != 0 && i != perConn-1 {
					continue
				}
				if _, err := conn.Write(batch); err != nil {
					t.Error(err)
					return
				}
				for range bytes.Count(batch, []byte("POST ")) {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Error(err)
						return
					}
					body, _ := io.ReadAll(resp.Body)
					if resp.StatusCode != 200 {
						t.Errorf("publish: %d %s", resp.StatusCode, body)
						return
					}
				}
				batch = batch[:0]
			}
		}()
	}
	wg.Wait()

	total := 0
	for ch := range channels {
		last := map[string]string{} // each connection's last message seen
		msgs := stored(ch)
		for _, m := range msgs {
			parts := strings.Split(string(m), ".")
			if len(parts) != 3 || parts[0] != fmt.Sprintf("c%03d", ch) {
				t.Fatalf("channel c%03d holds %q, a message of another channel", ch, m)
			}
			if prev, ok := last[parts[1]]; ok && prev >= parts[2] {
				t.Fatalf("channel c%03d: connection %s's message %s after %s", ch, parts[1], parts[2], prev)
			}
			last[parts[1]] = parts[2]
		}
		total += len(msgs)
	}
	if total != conns*perConn {
		t.Fatalf("%d messages stored in all, %d published", total, conns*perConn)
	}
}
