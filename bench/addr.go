package bench

import (
	"fmt"
	"net"
)

// sourceIP returns the loopback source address of connection number i (counted
// over all client processes of one run) when at most perIP connections share
// an address. Addresses run 127.1.0.1, 127.1.0.2, ... skipping last octets 0
// and 255, so 127.0.0.1 (and the rest of 127.0.x.x) is never used.
func sourceIP(i, perIP int) (net.IP, error) {
	if perIP < 1 || i < 0 {
		return nil, fmt.Errorf("bad source index %d/%d", i, perIP)
	}
	n := i / perIP
	b4 := 1 + n%254
	n /= 254
	b3 := n % 256
	b2 := 1 + n/256
	if b2 > 255 {
		return nil, fmt.Errorf("out of loopback source addresses at connection %d", i)
	}
	return net.IPv4(127, byte(b2), byte(b3), byte(b4)).To4(), nil
}
