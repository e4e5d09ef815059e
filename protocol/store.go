package protocol

// CFLastReader is implemented by a store whose CFLast waits on something
// that may fail (a cluster light node asks the store node: one NATS
// round trip). The protocol asks a Cometify listener's "from now" point
// an identifier given without an id) on its reader pool, never on
// a loop, and through CFLastRead when the store has it, so that a store
// it cannot reach refuses the listener rather than placing it at 0,
// which would replay the resume window.
type CFLastReader interface {
	CFLastRead(topic []byte) (uint64, error)
}

// cfLast is topic's highest push id for a listener's "from now" point;
// on a reader (readers.go).
func (a *API) cfLast(topic string) (uint64, error) {
	if r, ok := a.store.(CFLastReader); ok {
		return r.CFLastRead(strBytes(topic))
	}
	return a.store.CFLast(strBytes(topic)), nil
}
