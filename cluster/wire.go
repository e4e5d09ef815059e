package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/halleypush/halley/persist"
)

// The wire format of everything that crosses NATS. Each NATS message
// holds one frame: a version byte, a kind byte, then the kind's fields,
// integers as varints and byte strings as a uvarint length and the bytes.
// Binary rather than JSON because a delivery is encoded once per write on
// the store node and decoded once per light node, and a decoded frame's
// byte strings alias the NATS message (no copy). A frame with an unknown
// version or kind, a truncated field or trailing bytes is refused whole.

const wireVersion = 1

// frame kinds
const (
	frameEZWrite    = 'W' // forwarded EZComet write
	frameCFPush     = 'P' // forwarded Cometify push
	frameRead       = 'R' // read request
	frameAnswer     = 'A' // answer to a write or push
	frameReadAnswer = 'r' // answer to a read
	frameDelivery   = 'D' // one committed message, published to its subject
)

// Field caps. persist refuses longer names, ticks and nonces itself; the
// caps here only keep a hostile frame from asking for huge allocations.
const (
	maxWireName  = 1024
	maxWireTick  = 1024
	maxWireNonce = 1024
	maxWireBody  = 1 << 20
	maxWireText  = 4096 // error text in answers
	// maxWireMessages bounds the messages of one read answer; a read
	// asks for at most this many.
	maxWireMessages = 4096
)

// Kind says which API a channel or topic belongs to.
type Kind uint8

const (
	// EZ is an EZComet channel, named by its qname "<username>-<channel>";
	// its sequence is the message Seq.
	EZ Kind = 1
	// CF is a Cometify topic "<username>/<identifier>"; its sequence is
	// the push id.
	CF Kind = 2
)

func (k Kind) valid() bool { return k == EZ || k == CF }

// Op says what a forwarded Request asks.
type Op uint8

const (
	OpEZWrite Op = 1
	OpCFPush  Op = 2
)

// Request is a write or push forwarded to the store node.
type Request struct {
	Op Op
	EZ persist.EZWrite // when Op is OpEZWrite
	CF persist.CFPush  // when Op is OpCFPush
}

// Answer is the store node's outcome of a Request: exactly persist's
// result for the same call made locally, sentinel errors included (so
// errors.Is works on a light node as on the store node). A storage
// failure arrives as an error wrapping persist.ErrStorage whose text is
// the store node's. Msg.Body / Msg.Text are not sent back: an accepted or
// duplicate message has the body the light node forwarded.
type Answer struct {
	EZ persist.EZWriteResult // when the Request was an OpEZWrite
	CF persist.CFPushResult  // when it was an OpCFPush
}

// ReadRequest asks the store node for the retained messages of one
// channel or topic after a resume point: the read a light node makes to
// repair a gap and to serve a resume.
type ReadRequest struct {
	Kind Kind
	Name string
	// After is the seq (EZ) or push id (CF) to read after, unless ByTick.
	After uint64
	// ByTick reads an EZ channel after Tick (persist.EZRead) instead of
	// after a seq (persist.EZReadAfter).
	ByTick bool
	Tick   []byte
	// NotBefore (CF only): pushes older than this (Unix ns) count as
	// dropped, as in persist.CFRead.
	NotBefore int64
	// Limit bounds the answer; the store node lowers it so that the answer
	// fits one NATS message.
	Limit persist.ReadLimit
}

// Message is one message of a ReadAnswer: an EZ message (Seq, Tick, Body,
// Time) or a CF push (Seq is its id; Secret; Body is its text).
type Message struct {
	Seq    uint64
	Time   int64
	Secret bool
	Tick   []byte
	Body   []byte
}

// ReadAnswer is persist's read result: for EZ, ReadResult's fields (Last
// unused); for CF, CFReadResult's. Err is a read error from the store node
// (wrapping persist.ErrStorage).
type ReadAnswer struct {
	Messages []Message
	Cursor   uint64
	Last     uint64
	Gap      bool
	More     bool
	Err      error
}

// Delivery is one committed message as the store node publishes it and a
// light node receives it.
type Delivery struct {
	Kind Kind
	Name []byte // qname or topic
	// Seq is the message's Seq (EZ) or push id (CF). Prev is the
	// sequence the same channel's previous delivery carried, when
	// PrevKnown: a receiver whose last Seq is not Prev missed something.
	// EZ seqs are contiguous (Prev = Seq-1); CF ids may skip, so the
	// store node says what came before.
	Seq       uint64
	Prev      uint64
	PrevKnown bool
	Time      int64
	Secret    bool   // CF secret push
	Tick      []byte // EZ only
	Body      []byte // EZ body or CF text
}

// answer codes: which persist outcome an Answer or ReadAnswer carries.
const (
	codeOK = iota
	codeTickConflict
	codePushConflict
	codeRevoked
	codeSecretReplay
	codeNonceReused
	codeStorage // wraps persist.ErrStorage (ErrClosed too: the store node is going away)
	codeOther   // an error persist names (bad qname...), passed as text
	numCodes
)

// codeErrs maps codes to the sentinels they stand for.
var codeErrs = [numCodes]error{
	codeTickConflict: persist.ErrTickConflict,
	codePushConflict: persist.ErrPushConflict,
	codeRevoked:      persist.ErrRevoked,
	codeSecretReplay: persist.ErrSecretReplay,
	codeNonceReused:  persist.ErrNonceReused,
}

// codeOf is the code and error text sent for err.
func codeOf(err error) (byte, string) {
	if err == nil {
		return codeOK, ""
	}
	for c, s := range codeErrs {
		if s != nil && errors.Is(err, s) {
			return byte(c), ""
		}
	}
	if errors.Is(err, persist.ErrStorage) || errors.Is(err, persist.ErrClosed) {
		return codeStorage, err.Error()
	}
	if text := err.Error(); text != "" {
		return codeOther, text
	}
	return codeOther, "error"
}

// hasText says whether code comes with an error text: exactly the codes
// that are not a sentinel (one encoding per frame).
func hasText(code byte) bool { return code == codeStorage || code == codeOther }

// errOf is the error a light node sees for a code and text.
func errOf(code byte, text []byte) error {
	switch {
	case code == codeOK:
		return nil
	case code == codeStorage:
		return fmt.Errorf("%w: on the store node: %s", persist.ErrStorage, text)
	case code == codeOther:
		return fmt.Errorf("cluster: store node: %s", text)
	}
	return codeErrs[code]
}

// flag bits, per frame kind
const (
	flagA = 1 << iota
	flagB
	flagC
)

func flag(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}

func appendHeader(b []byte, kind byte) []byte { return append(b, wireVersion, kind) }

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendRequest appends r's frame to b.
func appendRequest(b []byte, r *Request) []byte {
	switch r.Op {
	case OpEZWrite:
		w := &r.EZ
		b = appendHeader(b, frameEZWrite)
		b = append(b, flag(w.Flush, flagA)|flag(w.NewTick, flagB))
		b = binary.AppendUvarint(b, w.AccountID)
		b = appendString(b, w.QName)
		b = appendBytes(b, w.Tick)
		return appendBytes(b, w.Body)
	case OpCFPush:
		p := &r.CF
		b = appendHeader(b, frameCFPush)
		b = append(b, flag(p.HasID, flagA)|flag(p.Secret, flagB)|flag(p.HasSecure, flagC))
		b = binary.AppendUvarint(b, p.AccountID)
		b = binary.AppendUvarint(b, p.ID)
		if p.HasSecure {
			b = append(b, p.Secure[:]...)
		}
		b = appendString(b, p.Topic)
		b = appendString(b, p.Nonce)
		return appendBytes(b, p.Text)
	}
	panic(fmt.Sprintf("cluster: request op %d", r.Op)) // a caller's bug, never input
}

// appendAnswer appends the frame of a's part for op to b.
func appendAnswer(b []byte, op Op, a *Answer) []byte {
	var (
		err  error
		dup  bool
		seq  uint64
		t    int64
		tick []byte
	)
	if op == OpEZWrite {
		err, dup, seq, t, tick = a.EZ.Err, a.EZ.Duplicate, a.EZ.Msg.Seq, a.EZ.Msg.Time, a.EZ.Msg.Tick
	} else {
		err, dup, seq, t = a.CF.Err, a.CF.Duplicate, a.CF.Msg.ID, a.CF.Msg.Time
		tick = nil
	}
	code, text := codeOf(err)
	b = appendHeader(b, frameAnswer)
	b = append(b, byte(op), code, flag(dup, flagA)|flag(op == OpCFPush && a.CF.Msg.Secret, flagB))
	b = binary.AppendUvarint(b, seq)
	b = binary.AppendVarint(b, t)
	b = appendBytes(b, tick)
	return appendString(b, truncate(text, maxWireText))
}

// appendReadRequest appends r's frame to b.
func appendReadRequest(b []byte, r *ReadRequest) []byte {
	b = appendHeader(b, frameRead)
	b = append(b, byte(r.Kind), flag(r.ByTick, flagA))
	b = binary.AppendUvarint(b, r.After)
	b = binary.AppendVarint(b, r.NotBefore)
	b = binary.AppendUvarint(b, uint64(max(r.Limit.Messages, 0)))
	b = binary.AppendUvarint(b, uint64(max(r.Limit.Bytes, 0)))
	b = appendString(b, r.Name)
	return appendBytes(b, r.Tick)
}

// appendReadAnswer appends a's frame to b.
func appendReadAnswer(b []byte, a *ReadAnswer) []byte {
	code, text := codeOf(a.Err)
	b = appendHeader(b, frameReadAnswer)
	b = append(b, code, flag(a.Gap, flagA)|flag(a.More, flagB))
	b = binary.AppendUvarint(b, a.Cursor)
	b = binary.AppendUvarint(b, a.Last)
	b = binary.AppendUvarint(b, uint64(len(a.Messages)))
	for i := range a.Messages {
		m := &a.Messages[i]
		b = binary.AppendUvarint(b, m.Seq)
		b = binary.AppendVarint(b, m.Time)
		b = append(b, flag(m.Secret, flagA))
		b = appendBytes(b, m.Tick)
		b = appendBytes(b, m.Body)
	}
	return appendString(b, truncate(text, maxWireText))
}

// appendDelivery appends d's frame to b.
func appendDelivery(b []byte, d *Delivery) []byte {
	b = appendHeader(b, frameDelivery)
	b = append(b, byte(d.Kind), flag(d.PrevKnown, flagA)|flag(d.Secret, flagB))
	b = binary.AppendUvarint(b, d.Seq)
	b = binary.AppendUvarint(b, d.Prev)
	b = binary.AppendVarint(b, d.Time)
	b = appendBytes(b, d.Name)
	b = appendBytes(b, d.Tick)
	return appendBytes(b, d.Body)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// decoder reads one frame. The first failure sticks: later reads return
// zero values, and err says what was wrong.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("cluster: bad frame: %s", what)
	}
	d.b = nil
}

func (d *decoder) byte(what string) byte {
	if len(d.b) == 0 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// flags reads a flag byte whose bits outside allowed must be clear, so
// that every frame has one encoding (the fuzzer checks re-encoding).
func (d *decoder) flags(allowed byte) byte {
	f := d.byte("flags")
	if f&^allowed != 0 {
		d.fail("unknown flags")
	}
	return f
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 { // overlong: not the one encoding
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed byte string of at most limit bytes; the
// result aliases the frame.
func (d *decoder) bytes(what string, limit int) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// int reads a uvarint that must fit an int.
func (d *decoder) int(what string) int {
	v := d.uvarint(what)
	if v > math.MaxInt32 {
		d.fail(what)
		return 0
	}
	return int(v)
}

// header checks the version and returns the frame kind.
func (d *decoder) header() byte {
	if d.byte("version") != wireVersion {
		d.fail("version")
	}
	return d.byte("frame kind")
}

// expect reads the header of a frame that must be of kind frame.
func (d *decoder) expect(frame byte) {
	if d.header() != frame {
		d.fail("unexpected frame kind")
	}
}

// kind reads a channel Kind.
func (d *decoder) kind() Kind {
	k := Kind(d.byte("kind"))
	if !k.valid() {
		d.fail("kind")
	}
	return k
}

// done is the decoder's error, or an error for trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// decodeRequest decodes a forwarded write or push. QName, Topic and Nonce
// are copied (strings); Tick, Body and Text alias b.
func decodeRequest(b []byte) (Request, error) {
	d := decoder{b: b}
	var r Request
	switch d.header() {
	case frameEZWrite:
		f := d.flags(flagA | flagB)
		r.Op = OpEZWrite
		r.EZ = persist.EZWrite{Flush: f&flagA != 0, NewTick: f&flagB != 0}
		r.EZ.AccountID = d.uvarint("account")
		r.EZ.QName = string(d.bytes("qname", maxWireName))
		r.EZ.Tick = d.bytes("tick", maxWireTick)
		r.EZ.Body = d.bytes("body", maxWireBody)
	case frameCFPush:
		f := d.flags(flagA | flagB | flagC)
		r.Op = OpCFPush
		r.CF = persist.CFPush{HasID: f&flagA != 0, Secret: f&flagB != 0, HasSecure: f&flagC != 0}
		r.CF.AccountID = d.uvarint("account")
		r.CF.ID = d.uvarint("id")
		if r.CF.HasSecure {
			if len(d.b) < len(r.CF.Secure) {
				d.fail("secure")
			} else {
				d.b = d.b[copy(r.CF.Secure[:], d.b):]
			}
		}
		r.CF.Topic = string(d.bytes("topic", maxWireName))
		r.CF.Nonce = string(d.bytes("nonce", maxWireNonce))
		r.CF.Text = d.bytes("text", maxWireBody)
	default:
		d.fail("not a request")
	}
	if err := d.done(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// decodeAnswer decodes an answer to a Request of op. Msg.Tick aliases b.
func decodeAnswer(b []byte, op Op) (Answer, error) {
	d := decoder{b: b}
	d.expect(frameAnswer)
	if Op(d.byte("op")) != op {
		d.fail("answer to another op")
	}
	code := d.byte("code")
	if code >= numCodes {
		d.fail("code")
	}
	f := d.flags(flagA | flagB)
	seq := d.uvarint("seq")
	t := d.varint("time")
	tick := d.bytes("tick", maxWireTick)
	text := d.bytes("error", maxWireText)
	if op == OpCFPush && len(tick) != 0 {
		d.fail("tick in a push answer")
	}
	if op == OpEZWrite && f&flagB != 0 {
		d.fail("secret in a write answer")
	}
	if hasText(code) != (len(text) != 0) {
		d.fail("error text")
	}
	if err := d.done(); err != nil {
		return Answer{}, err
	}
	var a Answer
	err := errOf(code, text)
	if op == OpEZWrite {
		a.EZ = persist.EZWriteResult{Err: err, Duplicate: f&flagA != 0,
			Msg: persist.Message{Seq: seq, Time: t, Tick: tick}}
	} else {
		a.CF = persist.CFPushResult{Err: err, Duplicate: f&flagA != 0,
			Msg: persist.CFMessage{ID: seq, Time: t, Secret: f&flagB != 0}}
	}
	return a, nil
}

// decodeReadRequest decodes a read request. Tick aliases b.
func decodeReadRequest(b []byte) (ReadRequest, error) {
	d := decoder{b: b}
	d.expect(frameRead)
	var r ReadRequest
	r.Kind = d.kind()
	r.ByTick = d.flags(flagA) != 0
	r.After = d.uvarint("after")
	r.NotBefore = d.varint("not before")
	r.Limit.Messages = d.int("limit")
	r.Limit.Bytes = d.int("byte limit")
	r.Name = string(d.bytes("name", maxWireName))
	r.Tick = d.bytes("tick", maxWireTick)
	if r.Kind == CF && r.ByTick {
		d.fail("a topic read by tick")
	}
	if err := d.done(); err != nil {
		return ReadRequest{}, err
	}
	return r, nil
}

// decodeReadAnswer decodes a read answer. The messages' slices alias b;
// the Messages slice is the one allocation.
func decodeReadAnswer(b []byte) (ReadAnswer, error) {
	d := decoder{b: b}
	d.expect(frameReadAnswer)
	var a ReadAnswer
	code := d.byte("code")
	if code >= numCodes {
		d.fail("code")
	}
	f := d.flags(flagA | flagB)
	a.Gap, a.More = f&flagA != 0, f&flagB != 0
	a.Cursor = d.uvarint("cursor")
	a.Last = d.uvarint("last")
	n := d.uvarint("count")
	// Each message takes at least 5 bytes: refuse counts the frame
	// cannot hold before allocating for them.
	if n > maxWireMessages || n > uint64(len(d.b)/5) {
		d.fail("count")
		n = 0
	}
	if n > 0 {
		a.Messages = make([]Message, n)
	}
	for i := range a.Messages {
		m := &a.Messages[i]
		m.Seq = d.uvarint("seq")
		m.Time = d.varint("time")
		m.Secret = d.flags(flagA) != 0
		m.Tick = d.bytes("tick", maxWireTick)
		m.Body = d.bytes("body", maxWireBody)
	}
	text := d.bytes("error", maxWireText)
	if hasText(code) != (len(text) != 0) {
		d.fail("error text")
	}
	if err := d.done(); err != nil {
		return ReadAnswer{}, err
	}
	a.Err = errOf(code, text)
	return a, nil
}

// decodeDelivery decodes a delivery; its slices alias b. It allocates
// nothing.
func decodeDelivery(b []byte) (Delivery, error) {
	d := decoder{b: b}
	d.expect(frameDelivery)
	var v Delivery
	v.Kind = d.kind()
	f := d.flags(flagA | flagB)
	v.PrevKnown, v.Secret = f&flagA != 0, f&flagB != 0
	v.Seq = d.uvarint("seq")
	v.Prev = d.uvarint("prev")
	v.Time = d.varint("time")
	v.Name = d.bytes("name", maxWireName)
	v.Tick = d.bytes("tick", maxWireTick)
	v.Body = d.bytes("body", maxWireBody)
	if err := d.done(); err != nil {
		return Delivery{}, err
	}
	return v, nil
}
