//go:build !halley_fault_clusterack

package cluster

// faultAckFirst is false outside the planted-fault test build
// (fault_clusterack.go).
const faultAckFirst = false
