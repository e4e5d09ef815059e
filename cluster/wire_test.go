package cluster

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/halleypush/halley/persist"
)

func TestRequestRoundTrip(t *testing.T) {
	cases := []Request{
		{Op: OpEZWrite, EZ: persist.EZWrite{QName: "alice-news", Tick: []byte("t1"), Body: []byte("hello"), AccountID: 7, NewTick: true}},
		{Op: OpEZWrite, EZ: persist.EZWrite{QName: "alice-news", Flush: true}},
		{Op: OpCFPush, CF: persist.CFPush{Topic: "alice/room", ID: 42, HasID: true, Secret: true, Text: []byte("{}"),
			AccountID: 9, Secure: [16]byte{1, 2, 3}, HasSecure: true, Nonce: "n0"}},
		{Op: OpCFPush, CF: persist.CFPush{Topic: "b/x"}},
	}
	for _, r := range cases {
		got, err := decodeRequest(appendRequest(nil, &r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !equalRequest(got, r) {
			t.Errorf("round trip: got %+v, want %+v", got, r)
		}
	}
}

// equalRequest compares requests treating nil and empty byte slices alike.
func equalRequest(a, b Request) bool {
	return bytes.Equal(appendRequest(nil, &a), appendRequest(nil, &b)) && a.Op == b.Op &&
		a.EZ.QName == b.EZ.QName && a.CF.Topic == b.CF.Topic && a.CF.Nonce == b.CF.Nonce
}

func TestAnswerKeepsSentinels(t *testing.T) {
	for _, want := range []error{nil, persist.ErrTickConflict, persist.ErrRevoked, persist.ErrPushConflict,
		persist.ErrSecretReplay, persist.ErrNonceReused, persist.ErrStorage, persist.ErrClosed} {
		for _, op := range []Op{OpEZWrite, OpCFPush} {
			a := Answer{EZ: persist.EZWriteResult{Err: want, Duplicate: true, Msg: persist.Message{Seq: 3, Time: -5, Tick: []byte("tk")}},
				CF: persist.CFPushResult{Err: want, Msg: persist.CFMessage{ID: 8, Time: 99, Secret: true}}}
			got, err := decodeAnswer(appendAnswer(nil, op, &a), op)
			if err != nil {
				t.Fatal(err)
			}
			gotErr := got.EZ.Err
			if op == OpCFPush {
				gotErr = got.CF.Err
			}
			switch {
			case want == nil && gotErr != nil:
				t.Errorf("op %d: got %v for ok", op, gotErr)
			case errors.Is(want, persist.ErrClosed) && !errors.Is(gotErr, persist.ErrStorage):
				t.Errorf("op %d: closed store answered %v, want a storage error (503)", op, gotErr)
			case want != nil && !errors.Is(want, persist.ErrClosed) && !errors.Is(gotErr, want):
				t.Errorf("op %d: got %v, want %v", op, gotErr, want)
			}
			if op == OpEZWrite && (got.EZ.Msg.Seq != 3 || got.EZ.Msg.Time != -5 || string(got.EZ.Msg.Tick) != "tk" || !got.EZ.Duplicate) {
				t.Errorf("write answer %+v", got.EZ)
			}
			if op == OpCFPush && (got.CF.Msg.ID != 8 || got.CF.Msg.Time != 99 || !got.CF.Msg.Secret) {
				t.Errorf("push answer %+v", got.CF)
			}
		}
	}
}

func TestReadRoundTrip(t *testing.T) {
	r := ReadRequest{Kind: EZ, Name: "a-b", ByTick: true, Tick: []byte("t"), After: 4, NotBefore: -1,
		Limit: persist.ReadLimit{Messages: 10, Bytes: 100}}
	got, err := decodeReadRequest(appendReadRequest(nil, &r))
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("read request: got %+v, %v; want %+v", got, err, r)
	}
	a := ReadAnswer{Cursor: 9, Last: 12, Gap: true, More: true, Messages: []Message{
		{Seq: 8, Time: 1, Tick: []byte("x"), Body: []byte("y")},
		{Seq: 9, Time: 2, Secret: true, Tick: []byte{}, Body: []byte("z")},
	}}
	gotA, err := decodeReadAnswer(appendReadAnswer(nil, &a))
	if err != nil || !reflect.DeepEqual(gotA, a) {
		t.Fatalf("read answer: got %+v, %v; want %+v", gotA, err, a)
	}
}

func TestDeliveryRoundTripAllocs(t *testing.T) {
	d := Delivery{Kind: CF, Name: []byte("a/b"), Seq: 10, Prev: 7, PrevKnown: true, Time: 123, Secret: true,
		Tick: []byte{}, Body: []byte(`{"x":1}`)}
	frame := appendDelivery(nil, &d)
	got, err := decodeDelivery(frame)
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("got %+v, %v; want %+v", got, err, d)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		buf = appendDelivery(buf[:0], &d)
		if _, err := decodeDelivery(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("encoding and decoding a delivery allocates %v times, want 0", n)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := appendDelivery(nil, &Delivery{Kind: EZ, Name: []byte("a-b"), Seq: 1, Body: []byte("m")})
	cases := map[string][]byte{
		"empty":        nil,
		"version":      append([]byte{9}, good[1:]...),
		"kind":         {wireVersion, 'Z'},
		"truncated":    good[:len(good)-1],
		"trailing":     append(append([]byte{}, good...), 0),
		"channel kind": {wireVersion, frameDelivery, 3, 0, 1, 0, 0, 0, 0, 0},
		"flags":        {wireVersion, frameDelivery, 1, 0x80, 1, 0, 0, 0, 0, 0},
		"huge length":  {wireVersion, frameDelivery, 1, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range cases {
		if _, err := decodeDelivery(b); err == nil {
			t.Errorf("%s: decoded % x", name, b)
		}
	}
	if _, err := decodeReadAnswer([]byte{wireVersion, frameReadAnswer, 0, 0, 0, 0, 0xff, 0xff, 0x03}); err == nil {
		t.Error("a read answer counting more messages than it holds decoded")
	}
}

// FuzzDecode feeds any bytes to every decoder: none may panic or allocate
// beyond what the frame holds, and a frame one accepts must re-encode to
// the same bytes (each frame has one encoding, so nothing is lost or
// invented in decoding).
func FuzzDecode(f *testing.F) {
	f.Add(appendDelivery(nil, &Delivery{Kind: EZ, Name: []byte("a-b"), Seq: 2, Prev: 1, PrevKnown: true, Tick: []byte("t"), Body: []byte("m")}))
	f.Add(appendRequest(nil, &Request{Op: OpEZWrite, EZ: persist.EZWrite{QName: "a-b", Tick: []byte("t"), Body: []byte("m")}}))
	f.Add(appendRequest(nil, &Request{Op: OpCFPush, CF: persist.CFPush{Topic: "a/b", HasSecure: true, Text: []byte("x")}}))
	f.Add(appendReadRequest(nil, &ReadRequest{Kind: CF, Name: "a/b", After: 3}))
	f.Add(appendReadAnswer(nil, &ReadAnswer{Messages: []Message{{Seq: 1, Body: []byte("x")}}}))
	f.Add(appendAnswer(nil, OpEZWrite, &Answer{EZ: persist.EZWriteResult{Err: persist.ErrStorage}}))
	f.Add([]byte("\x01l[{\"username\":\"a\",\"id\":1}]"))
	f.Add(appendChannelsRequest(nil, "a"))
	f.Add([]byte("\x01c[{\"qname\":\"a-b\",\"queued\":2,\"last_seq\":5}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := decodeDelivery(b); err == nil && !bytes.Equal(appendDelivery(nil, &d), b) {
			t.Fatalf("delivery %+v re-encodes differently", d)
		}
		if r, err := decodeRequest(b); err == nil && !bytes.Equal(appendRequest(nil, &r), b) {
			t.Fatalf("request %+v re-encodes differently", r)
		}
		if r, err := decodeReadRequest(b); err == nil && !bytes.Equal(appendReadRequest(nil, &r), b) {
			t.Fatalf("read request %+v re-encodes differently", r)
		}
		if a, err := decodeReadAnswer(b); err == nil && a.Err == nil && !bytes.Equal(appendReadAnswer(nil, &a), b) {
			t.Fatalf("read answer %+v re-encodes differently", a)
		}
		if as, err := decodeAccounts(b); err == nil {
			if _, err := appendAccounts(nil, as); err != nil {
				t.Fatalf("accounts %+v do not re-encode: %v", as, err)
			}
		}
		if name, err := decodeChannelsRequest(b); err == nil && !bytes.Equal(appendChannelsRequest(nil, name), b) {
			t.Fatalf("channels request %q re-encodes differently", name)
		}
		if cs, err := decodeChannels(b); err == nil {
			if _, err := appendChannels(nil, cs); err != nil {
				t.Fatalf("channels %+v do not re-encode: %v", cs, err)
			}
		}
		for _, op := range []Op{OpEZWrite, OpCFPush} {
			if a, err := decodeAnswer(b, op); err == nil && (op == OpEZWrite && a.EZ.Err == nil || op == OpCFPush && a.CF.Err == nil) &&
				!bytes.Equal(appendAnswer(nil, op, &a), b) {
				t.Fatalf("answer %+v re-encodes differently", a)
			}
		}
	})
}
