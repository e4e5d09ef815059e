package protocol

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/halleypush/halley/persist"
)

// TestDeliverCommittedAndInterest: a loop's first reader of a channel and
// first listener of a topic are told to Options.Interest, and their last
// leaving too; messages committed elsewhere (DeliverEZ, DeliverCF) reach
// them on every transport as a local group's do, once: a repeat finds the
// cursor past it.
func TestDeliverCommittedAndInterest(t *testing.T) {
	var mu sync.Mutex
	var interest []string
	f := newFixture(t, persist.Options{}, Options{Interest: func(cf bool, name string, on bool) {
		mu.Lock()
		interest = append(interest, fmt.Sprintf("%v %s %v", cf, name, on))
		mu.Unlock()
	}})
	key := "/" + f.acct.CFAPIKey
	ws := f.serve("GET", "/read/ws", "qname=john-c", "", nil)
	ws2 := f.serve("GET", "/read/ws", "qname=john-c", "", nil)
	cf := f.serve("GET", key+"/listen", "identifiers=Room", "", nil)
	poll := f.serve("GET", "/read", "qname=john-c&timeout=60", "", nil)

	f.api.DeliverEZ("john-c", 1, []byte("t1"), []byte("m1"))
	f.api.DeliverEZ("john-c", 1, []byte("t1"), []byte("m1")) // a repeat
	f.api.DeliverCF("john/room", 4, false, []byte("hi"))
	f.api.AfterBatch()
	f.settle()

	for _, c := range []*fakeConn{ws, ws2} {
		if got := c.sentCopy(); len(got) != 1 || !strings.Contains(got[0], `["t1","m1"]`) {
			t.Errorf("EZ WebSocket got %q, want m1 once", got)
		}
	}
	if r := poll.lastReply(t); !strings.Contains(string(r.body), `["t1","m1"]`) {
		t.Errorf("EZ poll answered %s", r.body)
	}
	if got := cf.sentCopy(); len(got) != 2 || !strings.Contains(got[1], `"id":4,"data":"hi"`) {
		t.Errorf("CF WebSocket got %q, want its since frame and the push", got)
	}
	f.loop.do(func() { f.api.Closed(ws); f.api.Closed(ws2); f.api.Closed(cf) })
	f.loop.sync()
	mu.Lock()
	defer mu.Unlock()
	want := "[false john-c true true john/room true false john-c false true john/room false]"
	if fmt.Sprint(interest) != want {
		t.Errorf("interest %q\nwant     %q", interest, want)
	}
}
