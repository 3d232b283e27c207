//go:build unix

package main

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestCtrlCEndsWaitingCommands interrupts commands while they wait, as a
// user at a terminal would with Ctrl-C: verify on a FIFO nobody writes,
// rules run on a standard input that never ends, apikey add waiting for
// the keys file's lock, simulate in the middle of a long run. Each ignored
// SIGINT before (the signal only cancelled a context they did not read,
// or read too late), and apikey add then created the key anyway once the
// lock was free.
func TestCtrlCEndsWaitingCommands(t *testing.T) {
	tmp := t.TempDir()
	fifo := filepath.Join(tmp, "bundle.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(data, "api_keys.yaml")
	if err := os.WriteFile(keys, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Hold the lock apikey add waits for.
	lock, err := os.OpenFile(keys+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		stdin bool // a pipe that stays open
	}{
		{"VerifyFIFO", []string{"verify", "--vkey", vkey, fifo}, false},
		{"RulesRunStdin", []string{"rules", "run", "--events", "-"}, true}, // the default pack
		{"APIKeyAddWaitingForLock", []string{"apikey", "add", "--data", data, "--name", "late", "--role", "auditor"}, false},
		{"Simulate", []string{"simulate", "--users", "20000", "--days", "400", "--learning", "1", "--evaluate"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = cleanEnv()
			cmd.Dir = tmp
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if tc.stdin {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				defer r.Close()
				cmd.Stdin = r
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
				t.Fatalf("%v ended before it was interrupted: %s", tc.args, out.String())
			case <-time.After(time.Second):
			}
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("%v still running 10 s after SIGINT: %s", tc.args, out.String())
			}
			if cmd.ProcessState.Success() {
				t.Errorf("%v interrupted exited 0: %s", tc.args, out.String())
			}
		})
	}
	// The interrupted apikey add created nothing once the lock was free.
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	time.Sleep(200 * time.Millisecond)
	if raw, err := os.ReadFile(keys); err != nil || strings.Contains(string(raw), "late") {
		t.Errorf("keys file after an interrupted apikey add = %q, %v; want no key named late", raw, err)
	}
}
