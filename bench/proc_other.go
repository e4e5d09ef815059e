//go:build !linux

package bench

import (
	"os/exec"
	"syscall"
)

// dieWithParent: only Linux has a parent-death signal; elsewhere the
// harness's own stop is all there is.
func dieWithParent(*exec.Cmd, syscall.Signal) {}
