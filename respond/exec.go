package respond

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/accessledger/accessledger/event"
)

// Environment variables an exec responder's command gets, besides the
// server's own.
const (
	EnvMessageID   = "ACCESSLEDGER_MESSAGE_ID"
	EnvMessageType = "ACCESSLEDGER_MESSAGE_TYPE"
)

// execWaitDelay bounds how long an attempt waits, once the command has
// exited or been killed, for whatever it started to close its output.
const execWaitDelay = time.Second

// execSender runs a command for each message: the program with its
// configured arguments, directly (no shell: nothing of the alert is ever
// in its arguments), the message's EncodePayload JSON on its stdin, and
// EnvMessageID and EnvMessageType in its environment. It is safe for
// concurrent use; each Send runs its own process.
type execSender struct {
	program string // resolved by exec.LookPath
	args    []string
	timeout time.Duration
}

// Send runs the command once and waits for it, at most the attempt's
// timeout; then it kills the command's whole process group, whether the
// command exited or timed out, so that whatever the command started in
// it dies with it. Exit status 0 is
// delivered; another is a failure with that Status; a command killed
// (by the timeout or a signal) fails with Status -1. The Outcome's
// Output holds what the command printed on stdout and stderr, at most
// event.MaxResponseOutput bytes, marked when cut.
func (s *execSender) Send(ctx context.Context, m *Message) Outcome {
	body, err := EncodePayload(m)
	if err != nil {
		return Outcome{Err: err, Permanent: true}
	}
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(actx, s.program, s.args...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(), EnvMessageID+"="+m.ID, EnvMessageType+"="+m.Type)
	out := &execOutput{max: event.MaxResponseOutput}
	// One writer for both: os/exec then gives the command a single pipe
	// and the output keeps its order.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = execWaitDelay
	killProcessGroup(cmd)

	name := filepath.Base(s.program)
	err = cmd.Run()
	endProcessGroup(cmd)
	o := Outcome{Output: out.String()}
	switch {
	case err == nil || (errors.Is(err, exec.ErrWaitDelay) && actx.Err() == nil):
		// Exited 0; if something it started kept its output open, that
		// was cut off after execWaitDelay, and the delivery stands.
		return o
	case errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		o.Status = -1
		o.Err = fmt.Errorf("%s: timed out after %v", name, s.timeout)
		return o
	case ctx.Err() != nil:
		o.Status = -1
		o.Err = fmt.Errorf("%s: %w", name, ctx.Err())
		return o
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		o.Status = ee.ExitCode()
		if o.Status < 0 {
			o.Err = fmt.Errorf("%s: %s", name, ee.String())
		} else {
			o.Err = fmt.Errorf("%s: exit status %d", name, o.Status)
		}
		return o
	}
	// It did not start (the program was removed, or is not executable).
	o.Err = fmt.Errorf("running %s: %w", name, err)
	return o
}

// execOutput keeps the first max bytes written to it and counts the
// rest, which it discards, so that a command printing without end
// neither blocks nor fills memory. os/exec writes to it from one
// goroutine.
type execOutput struct {
	max     int
	buf     []byte
	dropped int64
}

// Write keeps what fits and always reports all of p written.
func (w *execOutput) Write(p []byte) (int, error) {
	room := w.max - len(w.buf)
	if room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	if len(p) > room {
		w.dropped += int64(len(p) - max(room, 0))
	}
	return len(p), nil
}

// String returns the output as valid UTF-8, at most max bytes; when it
// was cut, it ends with a line saying how much there was.
func (w *execOutput) String() string {
	s := strings.ToValidUTF8(string(w.buf), "\uFFFD")
	if w.dropped == 0 && len(s) <= w.max {
		return s
	}
	mark := fmt.Sprintf("\n[output truncated: %d bytes in all]", int64(len(w.buf))+w.dropped)
	n := max(w.max-len(mark), 0)
	if n < len(s) {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s + mark
}
