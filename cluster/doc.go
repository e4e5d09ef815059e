// Package cluster joins Halley nodes into one service over NATS (S-02,
// S-03; the design and its reasoning are in docs/cluster.md).
//
// It owns what crosses NATS and nothing else: the embedded nats-server
// for one machine (EmbeddedNATS), the binary wire format of forwarded
// writes and pushes, reads and committed deliveries (wire.go), and Link,
// one node's NATS connection: request/reply to the store node (Forward,
// Read, ServeStore), and the committed deliveries published once per
// channel or topic subject (Publish) and followed by light nodes
// (Subscribe) with a per-channel sequence tracker that turns what core
// NATS may lose into repair reads, never into a silent gap.
//
// It knows persist's request and result types, so that a forwarded write
// is answered with the same values (and the same sentinel errors) as a
// local one; it knows nothing of HTTP, sockets or event loops. Callbacks
// it makes must not block: they hand work to the event loops.
package cluster
