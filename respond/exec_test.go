//go:build unix

package respond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// writeScript writes an executable shell script into a temporary
// directory and returns its path.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "responder.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestExecSender(t *testing.T, timeout time.Duration, command ...string) Sender {
	t.Helper()
	s, err := NewSender(ResponderConfig{Name: "ban", Type: TypeExec, Command: command, Timeout: timeout}, DefaultDelivery(), nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s
}

func TestExecDeliversPayloadOnStdin(t *testing.T) {
	dir := t.TempDir()
	payloadFile, envFile := filepath.Join(dir, "payload.json"), filepath.Join(dir, "env")
	script := writeScript(t, `cat > "$1"
printf '%s\n%s\n' "$ACCESSLEDGER_MESSAGE_ID" "$ACCESSLEDGER_MESSAGE_TYPE" > "$2"
echo "banned $(wc -c < "$1") bytes"
`)
	s := newTestExecSender(t, 0, script, payloadFile, envFile)
	a := senderTestAlert(t)
	m := senderTestMessage(t, TypeAlertAcknowledged, a)
	o := s.Send(context.Background(), m)
	if o.Err != nil || o.Status != 0 {
		t.Fatalf("Send = %+v, want delivered", o)
	}
	body, err := os.ReadFile(payloadFile)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := EncodePayload(m); !bytes.Equal(body, want) {
		t.Errorf("stdin =\n%s\nwant EncodePayload's\n%s", body, want)
	}
	var p webhookBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("stdin is not JSON: %v", err)
	}
	if got, err := event.ParseAlert(p.Data.Alert); err != nil || got.DedupKey != a.DedupKey || p.Type != TypeAlertAcknowledged || p.Data.By != m.By {
		t.Errorf("stdin carries alert %+v (%v), type %q, by %q; want the message's", got, err, p.Type, p.Data.By)
	}
	env, _ := os.ReadFile(envFile)
	if want := m.ID + "\n" + TypeAlertAcknowledged + "\n"; string(env) != want {
		t.Errorf("environment = %q, want %q", env, want)
	}
	if !strings.HasPrefix(o.Output, "banned ") || !strings.HasSuffix(o.Output, " "+strconv.Itoa(len(body))+" bytes\n") {
		t.Errorf("Output = %q, want \"banned %d bytes\\n\"", o.Output, len(body))
	}
}

// TestExecTimeoutKillsProcessGroup checks that a command that outlives
// its timeout is killed with its whole process group. The timeout is 2 s,
// not less: within it sh must fork, start the sleep, write its pid and
// print, which a loaded machine may take a while to do. What proves the
// group was killed is the sleep's death; the bound on the time Send takes
// only has to tell a return at the timeout (plus execWaitDelay at worst)
// from one that waits for the 30 s sleep to close the output pipe.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// sh starts a sleep in the background and waits for it: killing sh
	// alone would leave the sleep holding the output pipe for 30 s.
	s := newTestExecSender(t, 2*time.Second, "sh", "-c", `sleep 30 & echo $! > "$0"; echo started; wait`, pidFile)
	start := time.Now()
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	elapsed := time.Since(start)
	if o.Err == nil || o.Status != -1 || !strings.Contains(o.Err.Error(), "timed out after 2s") {
		t.Fatalf("Send = %+v, want \"timed out after 2s\" with status -1", o)
	}
	if elapsed > 20*time.Second {
		t.Errorf("Send returned after %v, want about 2s: it waited for the background sleep (30 s) instead of killing it with the group", elapsed)
	}
	if o.Output != "started\n" {
		t.Errorf("Output = %q, want what was printed before the kill", o.Output)
	}
	// The sleep was sent SIGKILL before Send returned; a loaded machine
	// may still take a moment to reap it. Left alive, it lasts 30 s.
	waitSleepGone(t, pidFile, "survived the timeout")
}

// waitSleepGone waits, at most 10 s, for the death of the sleep whose pid
// the command wrote to pidFile; else it kills it and fails with what.
func waitSleepGone(t *testing.T, pidFile, what string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !sleepGone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the background sleep (pid %d) %s", pid, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExecExitEndsProcessGroup: a command that exits 0 having started a
// process in the background (and closed its output, so nothing waits for
// it) is delivered, and the process dies with the group. It outlived the
// command: each alert left one more behind.
func TestExecExitEndsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := newTestExecSender(t, 10*time.Second, "sh", "-c", `sleep 37 >/dev/null 2>&1 & echo $! > "$0"; echo started`, pidFile)
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err != nil || o.Output != "started\n" {
		t.Fatalf("Send = %+v, want delivered with the output", o)
	}
	waitSleepGone(t, pidFile, "outlived the command")
}

// sleepGone reports whether the sleep process pid is dead: gone, or a
// zombie waiting for init to reap it (it was orphaned), or its pid
// reused by another program.
func sleepGone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	return !strings.Contains(string(stat), "(sleep) ") || strings.Contains(string(stat), ") Z ")
}

func TestExecFailureReportsStatusAndOutput(t *testing.T) {
	s := newTestExecSender(t, 0, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err == nil || o.Status != 3 || o.Permanent || o.Gone || !strings.Contains(o.Err.Error(), "sh: exit status 3") {
		t.Fatalf("Send = %+v, want \"sh: exit status 3\" with status 3", o)
	}
	if o.Output != "to-stdout\nto-stderr\n" {
		t.Errorf("Output = %q, want stdout and stderr in order", o.Output)
	}

	s = newTestExecSender(t, 0, "sh", "-c", "kill -TERM $$")
	o = s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err == nil || o.Status != -1 || !strings.Contains(o.Err.Error(), "terminated") {
		t.Errorf("Send of a command killed by SIGTERM = %+v, want status -1 naming the signal", o)
	}
}

func TestExecOutputTruncated(t *testing.T) {
	s := newTestExecSender(t, 0, "sh", "-c", `head -c 100000 /dev/zero | tr '\0' a; echo; echo done >&2`)
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err != nil {
		t.Fatalf("Send = %+v, want delivered: a long output is not a failure", o)
	}
	const mark = "\n[output truncated: 100006 bytes in all]"
	if len(o.Output) > event.MaxResponseOutput || !strings.HasSuffix(o.Output, mark) || !strings.HasPrefix(o.Output, "aaaa") {
		t.Errorf("Output of %d bytes ending %q, want at most %d ending %q", len(o.Output), o.Output[max(len(o.Output)-50, 0):], event.MaxResponseOutput, mark)
	}
}

func TestExecOutputKeepsUTF8(t *testing.T) {
	w := &execOutput{max: 10}
	w.Write([]byte("ab"))
	w.Write([]byte("\xff"))
	if got := w.String(); got != "ab\uFFFD" {
		t.Errorf("String() = %q, want invalid bytes replaced", got)
	}
	w = &execOutput{max: 60}
	for range 40 {
		w.Write([]byte("é"))
	}
	const mark = "\n[output truncated: 80 bytes in all]"
	got := w.String()
	if len(got) > 60 || !strings.HasSuffix(got, mark) || !strings.HasPrefix(got, "éééé") {
		t.Errorf("String() = %q (%d bytes), want at most 60 bytes, cut at a rune, marked", got, len(got))
	}
	for _, r := range strings.TrimSuffix(got, mark) {
		if r != 'é' {
			t.Errorf("String() = %q holds a cut rune", got)
		}
	}
}

func TestExecDoesNotInterpretAlertFields(t *testing.T) {
	dir := t.TempDir()
	out, argFile := filepath.Join(dir, "out.json"), filepath.Join(dir, "arg")
	a := senderTestAlert(t)
	a.Summary = "$(touch " + filepath.Join(dir, "pwned1") + ")"
	a.Rule.Title = "`touch " + filepath.Join(dir, "pwned2") + "`"
	a.Group = []event.GroupValue{{Field: "actor.id", Value: "; touch " + filepath.Join(dir, "pwned3") + " #"}}
	a.Response = []event.ResponseAction{{Action: "ban", Target: "source.ip", Value: "1.2.3.4 && touch " + filepath.Join(dir, "pwned4")}}
	literal := "$(touch " + filepath.Join(dir, "pwned5") + ")"
	// A careful script: it quotes what it handles.
	script := writeScript(t, `payload=$(cat)
printf '%s' "$payload" > "$1"
printf '%s' "$2" > "$3"
`)
	s := newTestExecSender(t, 0, script, out, literal, argFile)
	m := senderTestMessage(t, TypeAlertRaised, a)
	if o := s.Send(context.Background(), m); o.Err != nil {
		t.Fatalf("Send = %+v, want delivered", o)
	}
	for i := 1; i <= 5; i++ {
		if _, err := os.Stat(filepath.Join(dir, "pwned"+strconv.Itoa(i))); err == nil {
			t.Errorf("pwned%d exists: an alert field or argument was run by a shell", i)
		}
	}
	var p webhookBody
	body, _ := os.ReadFile(out)
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("stdin is not JSON: %v\n%s", err, body)
	}
	got, err := event.ParseAlert(p.Data.Alert)
	if err != nil || got.Summary != a.Summary || got.Rule.Title != a.Rule.Title || got.Group[0].Value != a.Group[0].Value {
		t.Errorf("stdin alert = %+v, %v, want the fields verbatim", got, err)
	}
	if arg, _ := os.ReadFile(argFile); string(arg) != literal {
		t.Errorf("argument = %q, want %q verbatim", arg, literal)
	}
}

// TestExecParentCanceled checks that the end of the caller's context
// kills the command at once. The attempt's own timeout (1 min) and the
// command (a 30 s sleep) both outlast the 20 s bound on Send by far, so
// that bound, generous for a loaded machine, still fails a Send that
// ignored the context and waited for either.
func TestExecParentCanceled(t *testing.T) {
	s := newTestExecSender(t, time.Minute, "sleep", "30")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	o := s.Send(ctx, senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err == nil || o.Status != -1 || !errors.Is(o.Err, context.DeadlineExceeded) || time.Since(start) > 20*time.Second {
		t.Errorf("Send under a canceled context = %+v after %v, want the context's error, status -1, at once", o, time.Since(start))
	}
}

func TestExecProgramRemoved(t *testing.T) {
	script := writeScript(t, "exit 0\n")
	s := newTestExecSender(t, 0, script)
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err == nil || o.Status != 0 || o.Permanent {
		t.Errorf("Send with the program removed = %+v, want a retryable error with status 0", o)
	}
}
