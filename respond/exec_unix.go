//go:build unix

package respond

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killProcessGroup runs cmd in a process group of its own and makes the
// cancellation of its context kill that whole group with SIGKILL: the
// command and every process it started that did not leave the group.
// endProcessGroup kills what is left of the group once the command has
// exited.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's id is the command's pid (Setpgid with Pgid 0).
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}

// endProcessGroup kills with SIGKILL what is left of the process group of
// cmd, which has exited: what it started in the background and left in
// the group. Each alert ran the command again, and such processes piled
// up (as zombies, under a server running as PID 1). The group outlives
// its leader while it has members, so its id is not reused meanwhile.
func endProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.SysProcAttr == nil || !cmd.SysProcAttr.Setpgid {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH: the group is empty
}
