package engine

import (
	"encoding/binary"
	"net/netip"
)

// ClientKey names one client for the per-IP caps (C-12) in 8 bytes: an
// IPv6 address's /64 (one IPv6 client owns a whole /64), or an IPv4
// address under ff00::/8, a multicast prefix no TCP peer can have. It is
// kept per connection and per busy client in the caps' tables, so its
// size is memory per connection (the 16-byte address it replaced cost
// a node of a cluster, which sees most client addresses a few
// connections each, ~70 B per connection in its tables).
type ClientKey uint64

const clientKeyV4 = 0xff << 56

// NoClientKey is a key ClientKeyOf never returns, for "no client": a
// holder of a cap's slot can keep the key it counts for in 8 bytes and
// still say it holds none. It is the multicast /64 ffff:ffff:ffff:ffff::,
// which no TCP peer can have; ClientKeyOf gives an address there (only
// a trusted proxy's header could name one) its neighbour's key.
const NoClientKey = ^ClientKey(0)

// ClientKeyOf is a's key; an IPv4-mapped IPv6 address counts as its IPv4.
func ClientKeyOf(a netip.Addr) ClientKey {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return ClientKey(clientKeyV4 | uint64(binary.BigEndian.Uint32(b[:])))
	}
	b := a.As16()
	if k := ClientKey(binary.BigEndian.Uint64(b[:8])); k != NoClientKey {
		return k
	}
	return NoClientKey - 1
}

// Addr is the address k names: the IPv4 address, or the IPv6 /64's first
// address.
func (k ClientKey) Addr() netip.Addr {
	if k>>56 == 0xff {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(k))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(k))
	return netip.AddrFrom16(b)
}

// Shard is k's shard among 1<<bits: the top bits of a multiplicative
// hash, so that neighbouring addresses (one network's clients) spread
// over the shards. The per-IP tables of the engine and the protocol
// shard by it.
func (k ClientKey) Shard(bits uint) int {
	return int(uint64(k) * 0x9e3779b97f4a7c15 >> (64 - bits))
}
