package cluster

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestEmbeddedNATS: the embedded server listens on loopback only, carries
// a 64 KiB message with room to spare, and is gone after Close.
func TestEmbeddedNATS(t *testing.T) {
	n, err := StartNATS(NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectedAddr(); got[:len("127.0.0.1:")] != "127.0.0.1:" {
		t.Errorf("connected to %s, want loopback", got)
	}
	if nc.MaxPayload() < 64<<10+4<<10 {
		t.Errorf("max payload %d cannot carry a 64 KiB push", nc.MaxPayload())
	}
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10+1024)
	if err := nc.Publish("x", big); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(20 * time.Second); err != nil || len(m.Data) != len(big) {
		t.Fatalf("got %v", err)
	}
	n.Close()
	n.Close() // twice is fine
	if _, err := nats.Connect(n.URL(), nats.Timeout(time.Second)); err == nil {
		t.Error("connected to a closed server")
	}
}

func TestNATSOptionsValidate(t *testing.T) {
	for _, o := range []NATSOptions{{Port: -1}, {Port: 70000}, {MaxPayload: 1024}, {StartTimeout: -1}} {
		o.EnsureDefaults()
		if o.Validate() == nil {
			t.Errorf("%+v validated", o)
		}
	}
}
