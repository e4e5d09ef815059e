package protocol

import (
	"strings"
	"testing"

	"github.com/halleypush/halley/persist"
)

// TestRepollAtTailPlacedUnread: a long-poll answered with its channel's
// last message polls again from that message's tick; it is placed at the
// channel's end with no store read (atTail), and the next message
// answers it. A poll from any other tick, or one made after another
// message, reads as before and gets what it missed.
func TestRepollAtTailPlacedUnread(t *testing.T) {
	f := newFixture(t, persist.Options{SweepInterval: -1}, Options{IndexSweep: -1})
	first := f.serve("GET", "/read", "qname=john-c&timeout=60", "", nil)
	f.write("qname=john-c&tick=t1&msg=one")
	f.await("the first poll's answer", func() bool { return first.numReplies() > 0 })
	if body := first.lastReply(t).body; !strings.Contains(body, `"t1"`) {
		t.Fatalf("first poll: %s", body)
	}

	again := f.serve("GET", "/read", "qname=john-c&timeout=60&tick=t1", "", nil)
	if n := f.api.stats.ezPlacedUnread.Load(); n != 1 {
		t.Fatalf("re-poll from the last tick: %d placed unread, want 1", n)
	}
	if again.numReplies() != 0 || again.held == 0 {
		t.Fatalf("re-poll answered at once (%d replies) or not held (%v)", again.numReplies(), again.held)
	}
	f.write("qname=john-c&tick=t2&msg=two")
	f.await("the re-poll's answer", func() bool { return again.numReplies() > 0 })
	if body := again.lastReply(t).body; !strings.Contains(body, `"t2"`) || strings.Contains(body, `"t1"`) {
		t.Fatalf("re-poll answer: %s", body)
	}

	// The message after t1 is t2: a poll from t1 now has it to read.
	late := f.serve("GET", "/read", "qname=john-c&timeout=60&tick=t1", "", nil)
	f.await("the late poll's answer", func() bool { return late.numReplies() > 0 })
	if body := late.lastReply(t).body; !strings.Contains(body, `"t2"`) {
		t.Fatalf("poll from t1 after t2: %s", body)
	}
	if n := f.api.stats.ezPlacedUnread.Load(); n != 1 {
		t.Fatalf("%d placed unread, want still 1", n)
	}

	// A WebSocket resuming from the last tick is placed too, and streams
	// the next message.
	ws := f.serve("GET", "/read/ws", "qname=john-c&tick=t2", "", header{"Upgrade": "websocket"})
	if n := f.api.stats.ezPlacedUnread.Load(); n != 2 {
		t.Fatalf("stream from the last tick: %d placed unread, want 2", n)
	}
	f.write("qname=john-c&tick=t3&msg=three")
	f.await("the stream's message", func() bool { return len(ws.sentCopy()) > 0 })
	if got := ws.sentCopy(); len(got) != 1 || !strings.Contains(got[0], `"t3"`) {
		t.Fatalf("stream got %q", got)
	}
}

// TestLingeringEntryFollowsItsChannel: a loop whose entry for a channel
// lingers with no reader is still woken for the channel's deliveries,
// so its last tick stays the channel's: a re-poll there from an older
// tick is not placed at the end (it reads, and gets what it missed). It
// fails when fan-out wakes only loops with readers (the wake condition
// before index entries counted, fanout.go).
func TestLingeringEntryFollowsItsChannel(t *testing.T) {
	f := newFanFixture(t)
	f.api.AfterBatch()
	ls := f.api.state[1]
	f.commit("t1", 1)
	ls.remove(f.readers[1].Tag().(*ezSub)) // loop 1's entry lingers
	f.commit("t2", 2)
	if cs := ls.atTail([]byte("john-fan"), []byte("t1")); cs != nil {
		t.Fatalf("loop 1 takes t1 for its channel's end (last %d): it missed t2's delivery", cs.last)
	}
	if cs := ls.atTail([]byte("john-fan"), []byte("t2")); cs == nil || cs.last != 2 {
		t.Fatal("loop 1 does not know t2 as its channel's end")
	}
}

// TestAtTailForgetsAfterWindowAndAccountChange: the end a loop knows is
// used within resumeWindow of its delivery, and never after an account
// change (whose channels number from 1 again).
func TestAtTailForgetsAfterWindowAndAccountChange(t *testing.T) {
	f := newFanFixture(t)
	f.api.AfterBatch()
	ls := f.api.state[0]
	f.commit("t1", 1)
	cs := ls.atTail([]byte("john-fan"), []byte("t1"))
	if cs == nil {
		t.Fatal("t1 not known as the end")
	}
	cs.at -= int64(resumeWindow) + 1
	if ls.atTail([]byte("john-fan"), []byte("t1")) != nil {
		t.Fatal("an end delivered longer than resumeWindow ago is still used")
	}
	cs.at += int64(resumeWindow) + 1
	ls.revoke("john") // a key rotation, say: the reader stays, and its entry
	if ls.subs["john-fan"] == nil || len(ls.subs["john-fan"].list) != 1 {
		t.Fatal("the entry or its reader went")
	}
	if ls.atTail([]byte("john-fan"), []byte("t1")) != nil {
		t.Fatal("an end known before the account changed is still used")
	}
}

// TestCFRepollAtTailPlacedUnread: a Cometify long-poll answered with its
// topics' last pushes polls again from their ids: placed with no read
// (cfAtTail), answered by the next push; a stream from the last ids
// opens the same way. A poll from an older id, or of a topic the loop
// has not seen a push of, reads.
func TestCFRepollAtTailPlacedUnread(t *testing.T) {
	f := newCFFixture(t, Options{IndexSweep: -1})
	first := f.listen("poll", "identifiers=a,b&timeout=60", "127.0.0.1", nil)
	f.push("a", "one", false, "")
	f.await("the first poll's answer", func() bool { return first.numReplies() > 0 })
	f.push("b", "two", false, "")

	// b's push was delivered to no poll but the entry lingered: both
	// ends are known here.
	again := f.listen("poll", "identifiers=a:1,b:1&timeout=60", "127.0.0.1", nil)
	if n := f.api.stats.cfPlacedUnread.Load(); n != 1 {
		t.Fatalf("re-poll from the last ids: %d placed unread, want 1", n)
	}
	if again.numReplies() != 0 || again.held == 0 {
		t.Fatalf("re-poll answered at once (%d replies) or not held (%v)", again.numReplies(), again.held)
	}
	f.push("b", "three", false, "")
	f.await("the re-poll's answer", func() bool { return again.numReplies() > 0 })
	if body := again.lastReply(t).body; !strings.Contains(body, `"three"`) || strings.Contains(body, `"two"`) {
		t.Fatalf("re-poll answer: %s", body)
	}

	// A stream resuming from the last ids opens with its first frame
	// and nothing read, then streams the next push.
	ws := f.listen("listen", "identifiers=a:1,b:2", "127.0.0.1", nil)
	if n := f.api.stats.cfPlacedUnread.Load(); n != 2 {
		t.Fatalf("stream from the last ids: %d placed unread, want 2", n)
	}
	f.push("b", "four", false, "")
	f.await("the stream's push", func() bool { return len(ws.sentCopy()) >= 2 })
	if got := strings.Join(frames(t, ws), "|"); got != `{"since":"a:1,b:2"}|{"identifier":"b","id":3,"data":"four"}` {
		t.Fatalf("stream frames: %s", got)
	}

	for _, q := range []string{
		"identifiers=a:1,b:1&timeout=60", // b:2 is queued
		"identifiers=a:1,c:1&timeout=60", // c: never pushed
		"identifiers=a:1,b&timeout=60",   // b from its last id: read
	} {
		f.listen("poll", q, "127.0.0.1", nil)
		if n := f.api.stats.cfPlacedUnread.Load(); n != 2 {
			t.Fatalf("%s: %d placed unread, want still 2", q, n)
		}
	}
}

// commit completes a write of tick from loop 0 as message seq, as the
// committer would, and runs what every loop was posted.
func (f *fanFixture) commit(tick string, seq uint64) {
	op, _ := f.write(0, tick)
	op.WriteDone(persist.EZWriteResult{Msg: persist.Message{Seq: seq}})
	f.api.AfterBatch()
	f.loops.run()
}

// TestNoPlacementWhileTheStoreRefuses: a store that reports itself
// unhealthy (failed, stalled, out of reach) gets the reads it would
// answer 503 or serve, as before: no reader is placed unread then.
func TestNoPlacementWhileTheStoreRefuses(t *testing.T) {
	f, fs := newFaultFixture(t)
	first := f.serve("GET", "/read", "qname=john-c&timeout=60", "", nil)
	f.write("qname=john-c&tick=t1&msg=one")
	f.await("the first poll's answer", func() bool { return first.numReplies() > 0 })
	cf := f.listen("poll", "identifiers=a&timeout=60", "127.0.0.1", nil)
	f.push("a", "one", false, "")
	f.await("the Cometify poll's answer", func() bool { return cf.numReplies() > 0 })
	fs.set(func(s *faultStore) { s.unhealthy = persist.ErrStorage })
	f.serve("GET", "/read", "qname=john-c&timeout=60&tick=t1", "", nil)
	f.listen("poll", "identifiers=a:1&timeout=60", "127.0.0.1", nil)
	if ez, cf := f.api.stats.ezPlacedUnread.Load(), f.api.stats.cfPlacedUnread.Load(); ez != 0 || cf != 0 {
		t.Fatalf("placed unread while the store refuses: %d EZComet, %d Cometify", ez, cf)
	}
}
