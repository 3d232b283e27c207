package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// actorCounts returns how many events of service each actor has in the
// log, once the index holds at least want of them (and has reached the
// latest checkpoint). The index follows the log on its own, later on a
// loaded machine: waiting for the count the test expects, rather than
// for a while, makes a missing event fail the test and a slow index not.
func (s *server) actorCounts(t *testing.T, service string, want int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var c struct{ Count int }
		s.get("/v1/events/count?service="+service, &c)
		if c.Count >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events in the log after 60s, want %d", c.Count, service, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.waitIndexed(s.latestCheckpoint().size, 60*time.Second)
	body := s.get("/v1/events?format=ndjson&service="+service, nil)
	counts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			Entry struct {
				Body struct {
					Actor struct{ ID string }
				}
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Bytes(), err)
		}
		counts[e.Entry.Body.Actor.ID]++
	}
	return counts
}

func writeLog(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitFiles reads real-looking sshd, nginx and JSONL files with
// malformed lines: the good lines land, the bad ones are reported with
// file:line, and a second run appends nothing twice.
func TestSubmitFiles(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	logs := t.TempDir()
	auth := filepath.Join(logs, "auth.log")
	writeLog(t, auth, `Nov 27 03:01:02 bastion sshd[811]: Connection from 203.0.113.7 port 51234 on 10.0.0.5 port 22
Nov 27 03:01:03 bastion sshd[811]: Invalid user oracle from 203.0.113.7 port 51234
Nov 27 03:01:03 bastion sshd[811]: Failed password for invalid user oracle from 203.0.113.7 port 51234 ssh2
Nov 27 03:01:09 bastion sshd[812]: Failed password for root from 203.0.113.8 port 51300 ssh2
this line is not syslog
Nov 27 03:01:10 bastion CRON[1234]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
Nov 27 03:01:11 bastion sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/ls
Nov 27 03:02:00 bastion sshd[900]: Accepted publickey for alice from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:xyz
Nov 27 03:02:00 bastion sshd[900]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)
Nov 27 04:00:00 bastion sshd[900]: Disconnected from user alice 192.0.2.10 port 50000
`)
	access := filepath.Join(logs, "access.log")
	writeLog(t, access, `192.0.2.20 - bob [27/Nov/2026:03:00:00 +0000] "GET /invoices/1 HTTP/1.1" 200 512 "-" "Mozilla/5.0"
192.0.2.21 - - [27/Nov/2026:03:00:01 +0000] "POST /login HTTP/1.1" 401 12 "-" "curl/8.0"
www.example.com - - [27/Nov/2026:03:00:02 +0000] "GET / HTTP/1.1" 200 1 "-" "-"
192.0.2.20 - bob [27/Nov/2026:03:00:03 +0000] "DELETE /invoices/1 HTTP/1.1" 204 0 "-" "Mozilla/5.0"`) // no final newline
	jsonl := filepath.Join(logs, "events.jsonl")
	writeLog(t, jsonl, `{"time":"2026-11-27T03:00:00Z","service":"vpn","actor":{"id":"carol"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"}
{"time":"2026-11-27T03:00:00Z","service":"vpn","actor":{"id":"carol"}}

{"id":"vpn-7","time":"2026-11-27T03:05:00Z","service":"vpn","actor":{"id":"dave"},"source":{"ip":"198.51.100.2"},"action":"logout","category":"authentication","outcome":"success"}
`)
	key := filepath.Join(dir, "admin.key")
	code, out, errOut := runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, auth, access, jsonl)
	if code != 1 {
		t.Errorf("submit exited %d, want 1 (some lines are bad)\nstdout %s\nstderr %s", code, out, errOut)
	}
	for _, want := range []string{auth + ":5: not an sshd syslog line", access + ":3: client address", jsonl + ":2: "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not report %q:\n%s", want, errOut)
		}
	}
	// CRON and sudo share /var/log/auth.log with sshd: not errors.
	if strings.Contains(errOut, auth+":6") || strings.Contains(errOut, auth+":7") {
		t.Errorf("stderr reports another program's syslog line as an error:\n%s", errOut)
	}
	if !strings.Contains(out, "18 lines: 10 events, 5 skipped (no access in them), 3 errors; the log acknowledged 10 (0 already there), rejected 0") {
		t.Errorf("summary = %q", out)
	}
	want := map[string]map[string]int{
		"sshd": {"oracle": 2, "root": 1, "alice": 2},
		"http": {"bob": 2, "anonymous": 1},
		"vpn":  {"carol": 1, "dave": 1},
	}
	for service, w := range want {
		n := 0
		for _, c := range w {
			n += c
		}
		if got := s.actorCounts(t, service, n); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s events by actor = %v, want %v", service, got, w)
		}
	}
	// A --state in a directory that does not exist fails before sending:
	// after, the events would be in the log and their offsets nowhere.
	code, out, errOut = runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, "--state", filepath.Join(logs, "nope", "state"), jsonl)
	if code == 0 || !strings.Contains(errOut, "does not exist") || strings.Contains(out+errOut, "acknowledged") {
		t.Errorf("submit --state in a missing directory = exit %d, %q %q; want a failure naming it, before sending", code, out, errOut)
	}
	// Again: every event is already there.
	code, out, _ = runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, auth, access, jsonl)
	if code != 1 || !strings.Contains(out, "the log acknowledged 10 (10 already there)") {
		t.Errorf("second submit = %d %q, want every event acknowledged as already there", code, out)
	}
}

// sshdLine is line n of the followed log: a failed login of user u<n>.
func sshdLine(n int) string {
	return fmt.Sprintf("%s bastion sshd[%d]: Failed password for u%d from 203.0.113.%d port %d ssh2\n",
		time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"), 1000+n, n, n%250+1, 1024+n)
}

func appendLines(t *testing.T, path string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for n := from; n < to; n++ {
		if _, err := f.WriteString(sshdLine(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// followSetup starts a server without detection and returns it, its admin
// key file, the path of a log to follow and of a --state file.
func followSetup(t *testing.T) (s *server, key, path, state string) {
	t.Helper()
	dir := t.TempDir()
	s = startServer(t, dir, "--detect=false")
	logs := t.TempDir()
	return s, filepath.Join(dir, "admin.key"), filepath.Join(logs, "auth.log"), filepath.Join(logs, "submit.state")
}

// startSubmitter runs "submit --follow" as its own process.
func startSubmitter(t *testing.T, s *server, key, state, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binPath, "submit", "--url", s.base, "--api-key-file", key, "--follow", "--state", state, "--poll", "20ms", "--format", "sshd", path)
	cmd.Env = cleanEnv()
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("submitter stderr:\n%s", errb.String())
		}
	})
	return cmd
}

// TestSubmitFollowRotationAndKill follows an sshd log through a
// rotation while running, a SIGKILL, a rotation while stopped and a
// restart: every line lands exactly once.
func TestSubmitFollowRotationAndKill(t *testing.T) {
	s, key, path, state := followSetup(t)
	appendLines(t, path, 0, 300)
	sub := startSubmitter(t, s, key, state, path)
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var c struct{ Count int }
			s.get("/v1/events/count?service=sshd", &c)
			if c.Count >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sshd events in the log, want %d", c.Count, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(300)
	// Rotation while following: the old file gets a few more lines
	// (written before the rotation took effect), then a new file.
	appendLines(t, path, 300, 350)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path+".1", 350, 360)
	appendLines(t, path, 360, 500)
	waitFor(500)
	// The offsets are saved every second; lines 500 on are only sent
	// again after the SIGKILL if the state names the new file.
	waitState(t, state, path)
	// SIGKILL while lines keep coming.
	appendLines(t, path, 500, 520)
	sub.Process.Signal(syscall.SIGKILL)
	sub.Wait()
	appendLines(t, path, 520, 600)
	// Rotated again while the submitter is down.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, 600, 700)
	sub = startSubmitter(t, s, key, state, path)
	appendLines(t, path, 700, 800)
	waitFor(800)
	sub.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("submitter after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the submitter did not stop after SIGTERM")
	}
	counts := s.actorCounts(t, "sshd", 800)
	for n := range 800 {
		if c := counts[fmt.Sprintf("u%d", n)]; c != 1 {
			t.Errorf("line %d is in the log %d times, want once", n, c)
		}
	}
	if len(counts) != 800 {
		t.Errorf("%d distinct users in the log, want 800", len(counts))
	}
}

// waitState polls the --state file of "submit --follow" until it records
// path as fully submitted: the fingerprint of the file now at path, and
// its whole length as the offset.
func waitState(t *testing.T, state, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st submitState
		raw, err := os.ReadFile(state)
		if err == nil {
			err = json.Unmarshal(raw, &st)
		}
		first, _ := firstLine(path)
		var size int64 = -1
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		if got := st.Files[path]; err == nil && first != nil && got.Fingerprint == fingerprint(first) && got.Offset == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("--state %s = %s (%v) after 30s, want %s recorded with fingerprint %s and offset %d",
				state, raw, err, path, fingerprint(first), size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSubmitSaysWhenTheLogIsUnreachable: against an address nothing
// listens on, submit says it cannot reach the log (it retried in
// silence, and a user saw nothing at all).
func TestSubmitSaysWhenTheLogIsUnreachable(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events.jsonl")
	writeLog(t, events, `{"time":"2026-11-27T03:00:00Z","service":"vpn","actor":{"id":"carol"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"}`+"\n")
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "submit", "--url", "http://"+freeAddr(t), "--key", "k", events)
	cmd.Env = cleanEnv()
	var errb syncBuffer
	cmd.Stderr = &errb
	_ = cmd.Run() // killed at the deadline: it retries until interrupted
	if !strings.Contains(errb.String(), "cannot reach the log") || !strings.Contains(errb.String(), "connection refused") {
		t.Errorf("submit against nothing: stderr %q, want it to say it cannot reach the log and why", errb.String())
	}
}

// TestSubmitSameFirstLine submits two files that begin with the same line
// and hold different lines at the same offset, and a file that replaced
// one of them with the same first line: every line lands. Ids derived
// from the first line and the offset alone made the log keep one line of
// each pair (or refuse the batch as reusing an id).
func TestSubmitSameFirstLine(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	key := filepath.Join(dir, "admin.key")
	logs := t.TempDir()
	header := `{"time":"2026-11-27T03:00:00Z","service":"batch","actor":{"id":"start"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"}` + "\n"
	line := func(actor string) string {
		return fmt.Sprintf(`{"time":"2026-11-27T03:00:01Z","service":"batch","actor":{"id":"%s"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"}`+"\n", actor)
	}
	a, b := filepath.Join(logs, "a.jsonl"), filepath.Join(logs, "b.jsonl")
	writeLog(t, a, header+line("alice"))
	writeLog(t, b, header+line("bobby"))
	code, out, errOut := runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, a, b)
	if code != 0 || !strings.Contains(out, "the log acknowledged 4 (0 already there), rejected 0") {
		t.Fatalf("submit of two files with the same first line = %d %q %q, want 4 events acknowledged", code, out, errOut)
	}
	// a.jsonl replaced by a file with the same first line.
	writeLog(t, a, header+line("carol"))
	code, out, errOut = runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, a)
	if code != 0 || !strings.Contains(out, "the log acknowledged 2 (1 already there), rejected 0") {
		t.Fatalf("submit of a new file with the same first line = %d %q %q, want its new line appended", code, out, errOut)
	}
	counts := s.actorCounts(t, "batch", 5)
	// Each file's first line is an event of its own; the file that
	// replaced a.jsonl repeats a.jsonl's.
	if want := map[string]int{"start": 2, "alice": 1, "bobby": 1, "carol": 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("events by actor = %v, want %v", counts, want)
	}
}

// TestSubmitFollowCopytruncate follows a file through logrotate's
// copytruncate with a writer that goes on at once: by the time the
// submitter looks again, the file is larger than the offset it had read,
// and only its first line shows it was truncated. Every line lands once.
func TestSubmitFollowCopytruncate(t *testing.T) {
	s, key, path, state := followSetup(t)
	appendLines(t, path, 0, 100)
	startSubmitter(t, s, key, state, path)
	s.actorCounts(t, "sshd", 100)
	for round := 1; round <= 3; round++ {
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".1", old, 0o644); err != nil {
			t.Fatal(err)
		}
		// Truncate and write more than was there, in one go.
		var more strings.Builder
		for n := round * 1000; n < round*1000+200; n++ {
			more.WriteString(sshdLine(n))
		}
		if err := os.WriteFile(path, []byte(more.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		want := 100 + 200*round
		counts := s.actorCounts(t, "sshd", want)
		for n := round * 1000; n < round*1000+200; n++ {
			if c := counts[fmt.Sprintf("u%d", n)]; c != 1 {
				t.Fatalf("round %d: line of u%d is in the log %d times, want once", round, n, c)
			}
		}
		if len(counts) != want {
			t.Fatalf("round %d: %d users in the log, want %d", round, len(counts), want)
		}
	}
}

// repeatReader reads n bytes of b, without holding them.
type repeatReader struct {
	b byte
	n int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n)]
	for i := range p {
		p[i] = r.b
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// TestSubmitLongLine reads a line of 16 MiB between short ones: it is
// reported as too long with its line number, and skipped, without being
// held in memory (a 300 MB line took 740 MB and 15 s only to be found
// not to be JSON); the lines after it have their right numbers, and the
// offset moves past it.
func TestSubmitLongLine(t *testing.T) {
	const long = 16 << 20
	var errb bytes.Buffer
	var stats submitStats
	s := &source{path: "big.jsonl", format: "jsonl", stats: &stats, stderr: &errb}
	in := io.MultiReader(strings.NewReader("not json\n"), &repeatReader{'a', long}, strings.NewReader("\n\nnot json either"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := s.read(t.Context(), in, "", 0, false); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// The reader's buffer and at most maxLineBytes of the line, as it
	// grows.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 6<<20 {
		t.Errorf("reading a line of %d MiB allocated %d MiB, want at most 6", long>>20, alloc>>20)
	}
	got := errb.String()
	for _, want := range []string{"big.jsonl:1: ", fmt.Sprintf("big.jsonl:2: line longer than %d bytes\n", maxLineBytes), "big.jsonl:4: "} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr does not report %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "big.jsonl:3") || strings.Count(got, "\n") != 3 {
		t.Errorf("stderr = %q, want lines 1, 2 and 4 reported, once each", got)
	}
	total := int64(len("not json\n") + long + len("\n\nnot json either"))
	if fp, off, ok := s.acked(); !ok || off != total || fp != fingerprint([]byte("not json\n")) {
		t.Errorf("acked = %q %d %v, want offset %d (past every line) and the first line's fingerprint", fp, off, ok, total)
	}
	if n, e, sk := stats.lines.Load(), stats.errors.Load(), stats.skipped.Load(); n != 4 || e != 3 || sk != 1 {
		t.Errorf("%d lines, %d errors, %d skipped; want 4, 3, 1", n, e, sk)
	}

	// A file that is one long line without a newline: reported, its
	// length the offset, and its fingerprint the one firstLine (which a
	// restart compares with) gives it.
	path := filepath.Join(t.TempDir(), "one.log")
	writeLog(t, path, strings.Repeat("b", 3<<20))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errb.Reset()
	s = &source{path: path, format: "auto", stats: &stats, stderr: &errb}
	if err := s.read(t.Context(), f, "", 0, false); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s:1: line longer than %d bytes\n", path, maxLineBytes); errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
	first, _ := firstLine(path)
	if fp, off, _ := s.acked(); off != 3<<20 || first == nil || fp != fingerprint(first) {
		t.Errorf("acked = %q %d, want offset %d and fingerprint %s (of firstLine)", fp, off, 3<<20, fingerprint(first))
	}
}

// TestSubmitLongLineState submits a file with a 3 MiB line between two
// events, with --state: the line is reported and skipped, the events
// land, and the saved offset is past the whole file, so that a line
// appended later is read alone, with its line number.
func TestSubmitLongLineState(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	key := filepath.Join(dir, "admin.key")
	logs := t.TempDir()
	path, state := filepath.Join(logs, "events.jsonl"), filepath.Join(logs, "submit.state")
	ev := func(actor string) string {
		return fmt.Sprintf(`{"time":"2026-11-27T03:00:00Z","service":"big","actor":{"id":"%s"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"}`, actor)
	}
	writeLog(t, path, ev("alice")+"\n"+`{"pad":"`+strings.Repeat("x", 3<<20)+`"}`+"\n"+ev("bobby")+"\n")
	code, out, errOut := runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, "--state", state, path)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("%s:2: line longer than %d bytes\n", path, maxLineBytes)) ||
		!strings.Contains(out, "3 lines: 2 events, 0 skipped (no access in them), 1 errors; the log acknowledged 2 (0 already there)") {
		t.Fatalf("submit = %d %q %q, want the long line 2 reported and the 2 events acknowledged", code, out, errOut)
	}
	var st submitState
	if raw, err := os.ReadFile(state); err != nil || json.Unmarshal(raw, &st) != nil {
		t.Fatalf("--state: %s %v", raw, err)
	}
	fi, _ := os.Stat(path)
	if first, _ := firstLine(path); st.Files[path].Offset != fi.Size() || st.Files[path].Fingerprint != fingerprint(first) {
		t.Errorf("--state = %+v, want offset %d and fingerprint %s", st.Files[path], fi.Size(), fingerprint(first))
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(ev("carol") + "\n" + "not json\n")
	f.Close()
	code, out, errOut = runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, "--state", state, path)
	if code != 1 || !strings.Contains(errOut, path+":5: ") || strings.Contains(errOut, path+":2") ||
		!strings.Contains(out, "2 lines: 1 events, 0 skipped (no access in them), 1 errors; the log acknowledged 1 (0 already there)") {
		t.Fatalf("submit of the appended lines = %d %q %q, want carol's line acknowledged and line 5 reported", code, out, errOut)
	}
	if got, want := s.actorCounts(t, "big", 3), map[string]int{"alice": 1, "bobby": 1, "carol": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events by actor = %v, want %v", got, want)
	}
}

// runCLIStdin is runCLI with stdin as the command's standard input.
func runCLIStdin(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = cleanEnv()
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("running accessledger %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestSubmitStdinTwice pipes the same sshd lines into "submit -" twice,
// as a retried "journalctl | accessledger submit -" does: the second run
// appends nothing (standard input had a random name in the ids of each
// run, and every line was appended again). The same input grown by more
// lines appends only those.
func TestSubmitStdinTwice(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	key := filepath.Join(dir, "admin.key")
	var lines []string
	for n := range 30 {
		lines = append(lines, sshdLine(n))
	}
	first := strings.Join(lines[:20], "")
	args := []string{"submit", "--url", s.base, "--api-key-file", key, "--format", "sshd", "-"}
	for run, want := range []string{"the log acknowledged 20 (0 already there)", "the log acknowledged 20 (20 already there)"} {
		code, out, errOut := runCLIStdin(t, first, args...)
		if code != 0 || !strings.Contains(out, "20 lines: 20 events") || !strings.Contains(out, want) {
			t.Fatalf("run %d: submit - = %d %q %q, want %q", run+1, code, out, errOut, want)
		}
	}
	code, out, errOut := runCLIStdin(t, strings.Join(lines, ""), args...)
	if code != 0 || !strings.Contains(out, "the log acknowledged 30 (20 already there)") {
		t.Fatalf("submit - of the same lines and 10 more = %d %q %q, want only the 10 appended", code, out, errOut)
	}
	counts := s.actorCounts(t, "sshd", 30)
	for n := range 30 {
		if c := counts[fmt.Sprintf("u%d", n)]; c != 1 {
			t.Errorf("line %d is in the log %d times, want once", n, c)
		}
	}
	if len(counts) != 30 {
		t.Errorf("%d users in the log, want 30", len(counts))
	}
	var c struct{ Count int }
	if s.get("/v1/events/count?service=sshd", &c); c.Count != 30 {
		t.Errorf("%d sshd events in the log, want 30", c.Count)
	}
}

// TestSubmitRejectedLine submits events the log rejects, one too large
// to store (which submit cannot tell before sending) and one reusing
// another event's id with other content: each is reported once, as
// FILE:LINE (it was "ln-<hash>: rejected…", twice: a warning and
// OnRejected's line).
func TestSubmitRejectedLine(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--detect=false")
	key := filepath.Join(dir, "admin.key")
	logs := t.TempDir()
	ev := func(id, actor, attrs string) string {
		if id != "" {
			id = fmt.Sprintf(`"id":%q,`, id)
		}
		return fmt.Sprintf(`{%s"time":"2026-11-27T03:00:00Z","service":"rej","actor":{"id":"%s"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"%s}`+"\n", id, actor, attrs)
	}
	// 64 attributes of the largest key and value: each within the
	// schema's limits, together more than an entry holds.
	var big strings.Builder
	big.WriteString(`,"attributes":{`)
	for i := range 64 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `"%s%02d":"%s"`, strings.Repeat("k", 62), i, strings.Repeat("v", 1024))
	}
	big.WriteString("}")
	a, b := filepath.Join(logs, "a.jsonl"), filepath.Join(logs, "b.jsonl")
	writeLog(t, a, ev("", "alice", "")+"\n"+ev("", "huge", big.String())+ev("vpn-7", "dave", ""))
	code, out, errOut := runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, a)
	if code != 1 || !strings.Contains(out, "4 lines: 3 events, 1 skipped (no access in them), 1 errors; the log acknowledged 2 (0 already there), rejected 1, dropped 0") {
		t.Errorf("submit = %d %q %q, want the large event rejected", code, out, errOut)
	}
	if want := a + ":3: rejected by the log: (400) the stored event would exceed"; !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 2 ||
		strings.Contains(errOut, "ln-") || !strings.Contains(errOut, "1 lines could not be read or were rejected") {
		t.Errorf("stderr = %q, want %q… said once, and the closing error", errOut, want)
	}
	writeLog(t, b, ev("", "bobby", "")+ev("vpn-7", "eve", ""))
	code, out, errOut = runCLI(t, nil, "submit", "--url", s.base, "--api-key-file", key, b)
	if code != 1 || !strings.Contains(out, "the log acknowledged 1 (0 already there), rejected 1, dropped 0") {
		t.Errorf("submit = %d %q %q, want the event reusing vpn-7 rejected", code, out, errOut)
	}
	if want := b + ":2: rejected by the log: (409) "; !strings.HasPrefix(errOut, want) || strings.Count(errOut, "rejected") != 2 {
		t.Errorf("stderr = %q, want %q… said once", errOut, want)
	}
}

// TestSubmitSummaryDropped: events the log never answered are counted
// as dropped in the summary and the error (which said only "not every
// event was sent").
func TestSubmitSummaryDropped(t *testing.T) {
	old := submitFinalWait
	submitFinalWait = 500 * time.Millisecond
	t.Cleanup(func() { submitFinalWait = old })
	events := filepath.Join(t.TempDir(), "events.jsonl")
	line := `{"time":"2026-11-27T03:00:00Z","service":"vpn","actor":{"id":"carol"},"source":{"ip":"198.51.100.1"},"action":"login","category":"authentication","outcome":"success"}` + "\n"
	writeLog(t, events, line+line+strings.Replace(line, "carol", "dave", 1))
	var out, errb bytes.Buffer
	err := submitCmd(t.Context(), []string{"--url", "http://" + freeAddr(t), "--key", "k", events}, func(string) string { return "" }, &out, &errb)
	if !strings.Contains(out.String(), "rejected 0, dropped 3\n") {
		t.Errorf("summary = %q, want 3 events dropped", out.String())
	}
	if err == nil || !strings.Contains(err.Error(), "3 dropped") {
		t.Errorf("error = %v, want it to say 3 events were dropped", err)
	}
}
