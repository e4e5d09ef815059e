//go:build halley_fault_clusterack

package cluster

// faultAckFirst plants a bug for the cluster kill -9 test (cmd/halley):
// a light node answers a forwarded write `ok` at once and sends it to the
// store node a second later, so a light node killed meanwhile loses writes
// it acknowledged. Test builds only.
const faultAckFirst = true
