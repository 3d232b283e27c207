package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/powerfs"
)

// The real-failure tests run the ledger on a powerfs mount, in a child
// process (this test binary, re-executed with LEDGER_CHILD set): the
// process that serves a FUSE mount must not map its files (see powerfs).

func TestMain(m *testing.M) {
	if job := os.Getenv("LEDGER_CHILD"); job != "" {
		if err := runChild(job, os.Getenv("LEDGER_CHILD_DIR")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childReport is what a child process prints, as JSON, on its last line.
type childReport struct {
	Acked      uint64 `json:"acked"`       // size after the acknowledged appends
	FailedErr  string `json:"failed_err"`  // error of the append made after the fault was armed
	IsErrFail  bool   `json:"is_err_fail"` // errors.Is(that error, ErrFailed)
	Healthy    string `json:"healthy"`     // Healthy() after it
	SignErr    string `json:"sign_err"`    // SignCheckpoint() after it
	Size       uint64 `json:"size"`        // Size() at the end
	Checkpoint uint64 `json:"checkpoint"`  // Latest().Size at the end
}

// childEntry is entry i of the child's log: the acknowledged ones are
// small, those from 300 on big enough (9,000 bytes) and incompressible, so
// that the commit writes their chunks to Badger's value log as well as to
// its memtable.
func childEntry(i int) []byte {
	if i < 300 {
		return entryData(i)
	}
	pad := make([]byte, 9000)
	rand.NewChaCha8([32]byte{byte(i), byte(i >> 8)}).Read(pad)
	return append(entryData(i), pad...)
}

func childConfig(dir string) (Config, error) {
	sv, err := LoadKeyFile(filepath.Join(dir, "log.key"))
	if err != nil {
		return Config{}, err
	}
	signer, err := NewNoteSigner(testOrigin, sv)
	if err != nil {
		return Config{}, err
	}
	return Config{Dir: filepath.Join(dir, "badger"), Origin: testOrigin, Signer: signer, CheckpointInterval: time.Hour}, nil
}

// runChild is the child side. "append" creates a log, appends 300
// entries, prints "ready", waits for a line on stdin (the parent arms a
// fault meanwhile), appends 40 more and reports. "reopen" opens the log
// (full verification), checks every entry and appends one more.
func runChild(job, dir string) error {
	cfg, err := childConfig(dir)
	if err != nil {
		return err
	}
	var rep childReport
	switch job {
	case "append":
		l, err := Create(bg, cfg)
		if err != nil {
			return err
		}
		for i := 0; i < 300; i += 60 {
			entries := make([]Entry, 60)
			for j := range entries {
				entries[j] = Entry{Data: childEntry(i + j)}
			}
			if _, err := l.Append(bg, entries...); err != nil {
				return fmt.Errorf("acknowledged append: %w", err)
			}
		}
		if _, err := l.SignCheckpoint(bg); err != nil {
			return err
		}
		rep.Acked, _ = l.Size()
		fmt.Println("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return err
		}
		entries := make([]Entry, 40)
		for j := range entries {
			entries[j] = Entry{Data: childEntry(300 + j)}
		}
		_, err = l.Append(bg, entries...)
		rep.FailedErr, rep.IsErrFail = fmt.Sprint(err), errors.Is(err, ErrFailed)
		rep.Healthy = fmt.Sprint(l.Healthy())
		_, err = l.SignCheckpoint(bg)
		rep.SignErr = fmt.Sprint(err)
		rep.Size, _ = l.Size()
		rep.Checkpoint = l.Latest().Size
		l.Close(bg)
	case "reopen":
		l, err := Open(bg, cfg)
		if err != nil {
			return err
		}
		defer l.Close(bg)
		rep.Size, _ = l.Size()
		for i := range rep.Size {
			data, _, err := l.Entry(bg, i)
			if err != nil || !bytes.Equal(data, childEntry(int(i))) {
				return fmt.Errorf("Entry(%d) = %.40q, %v; want %.40q", i, data, err, childEntry(int(i)))
			}
		}
		if _, err := l.Append(bg, Entry{Data: childEntry(int(rep.Size))}); err != nil {
			return fmt.Errorf("append after reopen: %w", err)
		}
		cp, err := l.SignCheckpoint(bg)
		if err != nil {
			return err
		}
		rep.Checkpoint = cp.Size
	default:
		return fmt.Errorf("unknown job %q", job)
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func startChild(t *testing.T, job, dir string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEDGER_CHILD="+job, "LEDGER_CHILD_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, bufio.NewReader(stdout)
}

func readReport(t *testing.T, job string, cmd *exec.Cmd, out *bufio.Reader) childReport {
	t.Helper()
	rest, _ := io.ReadAll(out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child %s: %v; output %q", job, err, rest)
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	var rep childReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("child %s printed %q: %v", job, rest, err)
	}
	return rep
}

// TestRealSyncFailureStopsLedger makes Badger's own sync (or write-back)
// of its value log or memtable fail for real, once, on a FUSE file system:
// the commit must not be acknowledged, nothing more may be signed, and
// after a power cut the log must open and hold every acknowledged entry.
// The value-log case is the failure Badger only logs (its commit returns
// nil): this pins the ledger's handling of it to the real thing, whatever
// Badger's log line says.
func TestRealSyncFailureStopsLedger(t *testing.T) {
	if err := powerfs.Available(); err != nil {
		t.Skipf("powerfs cannot mount here: %v", err)
	}
	cases := []struct {
		name   string
		op     powerfs.Op
		suffix string
	}{
		{"ValueLogSync", powerfs.Fsync, ".vlog"},
		{"MemtableSync", powerfs.Fsync, ".mem"},
		{"MemtableWriteBack", powerfs.Write, ".mem"},
		{"ValueLogWriteBack", powerfs.Write, ".vlog"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := powerfs.New()
			mnt := filepath.Join(t.TempDir(), "mnt")
			m, err := fs.Mount(mnt)
			if err != nil {
				t.Fatalf("Mount() = %v", err)
			}
			defer func() { m.Unmount() }()
			if _, err := GenerateKeyFile(filepath.Join(mnt, "log.key")); err != nil {
				t.Fatal(err)
			}
			cmd, stdin, out := startChild(t, "append", mnt)
			if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child said %q, %v; want ready", line, err)
			}
			fs.FailNext(tc.op, func(p string) bool { return strings.HasSuffix(p, tc.suffix) }, syscall.EIO)
			fmt.Fprintln(stdin, "go")
			rep := readReport(t, "append", cmd, out)
			if !rep.IsErrFail {
				t.Errorf("Append() after a failed %s = %s, want ErrFailed", tc.name, rep.FailedErr)
			}
			if rep.Healthy == "<nil>" {
				t.Errorf("Healthy() after a failed %s = nil, want an error", tc.name)
			}
			if rep.SignErr == "<nil>" || rep.Checkpoint != rep.Acked {
				t.Errorf("after a failed %s: SignCheckpoint() = %s, latest checkpoint %d; want an error and the checkpoint at %d", tc.name, rep.SignErr, rep.Checkpoint, rep.Acked)
			}
			if rep.Size != rep.Acked {
				t.Errorf("Size() after a failed %s = %d, want %d", tc.name, rep.Size, rep.Acked)
			}

			// Power cut, fresh mount: the log opens (full verification),
			// with every acknowledged entry and maybe the failed batch.
			fs.PowerCut()
			if err := m.Unmount(); err != nil {
				t.Fatalf("Unmount() = %v", err)
			}
			if m, err = fs.Mount(mnt); err != nil {
				t.Fatalf("Mount() again = %v", err)
			}
			cmd, _, out = startChild(t, "reopen", mnt)
			got := readReport(t, "reopen", cmd, out)
			if got.Size != rep.Acked && got.Size != rep.Acked+40 {
				t.Errorf("Size() after power cut and reopen = %d, want %d or %d", got.Size, rep.Acked, rep.Acked+40)
			}
		})
	}
}
