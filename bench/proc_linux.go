package bench

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes cmd get sig when the harness dies (even by SIGKILL),
// so that no server is left running after a crashed run.
func dieWithParent(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
}
