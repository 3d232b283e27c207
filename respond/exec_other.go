//go:build !unix

package respond

import "os/exec"

// killProcessGroup leaves the cancellation of cmd's context to kill the
// command alone: without Unix process groups, what it started may
// outlive it.
func killProcessGroup(cmd *exec.Cmd) {}

// endProcessGroup does nothing without Unix process groups.
func endProcessGroup(cmd *exec.Cmd) {}
