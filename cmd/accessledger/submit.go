package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/client/ingest"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

const submitUsage = `usage: accessledger submit [flags] FILE... | -

Reads logs that already exist and appends their lines to the log as access
events: JSON Lines of events, nginx/Apache combined (or common) access logs,
and OpenSSH sshd authentication messages (Failed password, Invalid user,
Accepted password|publickey, Disconnected) in syslog or journald short and
short-iso formats. The format of each file is detected from its first line
unless --format says it. A line that cannot be read, or whose event the log
rejects, is reported with its file and line number and skipped; the run goes
on, and ends with a summary. A line longer than 1 MiB is skipped unread.

Syslog lines of other programs (CRON, sudo, systemd, ...) are skipped, so
that /var/log/auth.log can be read as it is.

Each event without an id gets one derived from its file (its path and first
line), the line's byte offset and the line itself, so a line submitted
twice lands once, and lines of different files never share an id.
Standard input is named stdin: the same input piped twice lands once,
but lines at other offsets, or after another first line (overlapping
"journalctl --since" windows), are new lines to it. --follow
tails the files as tail -F does (a file renamed away and replaced, or
truncated, even by logrotate's copytruncate with a writer that goes on at
once, is followed), and --state keeps the offsets acknowledged by the
server, so that a restart neither loses nor duplicates a line.

examples:
  accessledger submit --api-key-file submitter.key /var/log/nginx/access.log
  accessledger submit --api-key-file submitter.key --follow --state /var/lib/al-submit.state /var/log/auth.log
  journalctl -u ssh -o short-iso | accessledger submit --api-key-file submitter.key --format sshd -

flags:
`

// submitState is the --state file: for each followed file, its
// fingerprint and the offset below which every line is answered.
type submitState struct {
	Files map[string]fileState `json:"files"`
}

type fileState struct {
	Fingerprint string `json:"fingerprint"`
	Offset      int64  `json:"offset"`
}

// submitStats counts lines, for the summary.
type submitStats struct {
	lines, events, skipped, errors atomic.Int64
}

// submitCmd runs "accessledger submit".
func submitCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), submitUsage); fs.PrintDefaults() }
	var sf serverFlags
	sf.register(fs, getenv)
	format := fs.String("format", "auto", "auto, jsonl, combined or sshd")
	service := fs.String("service", "", `service of the events (default "http" for access logs, "sshd" for sshd)`)
	follow := fs.Bool("follow", false, "keep reading the files as they grow, across rotation and truncation, until interrupted")
	statePath := fs.String("state", "", "file keeping the acknowledged offsets (required with --follow)")
	poll := fs.Duration("poll", 250*time.Millisecond, "with --follow, how often to look for new lines")
	batch := fs.Int("batch", 500, "events per request")
	files, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(files) == 0:
		return errors.New("give the files to read (or - for standard input)")
	case *follow && *statePath == "":
		return errors.New("--follow needs --state FILE, where the acknowledged offsets are kept across restarts")
	case *format != "auto" && *format != ingest.FormatJSONL && *format != ingest.FormatCombined && *format != ingest.FormatSSHD:
		return fmt.Errorf("--format %q: want auto, jsonl, combined or sshd", *format)
	}
	for _, f := range files {
		if f == "-" && (*follow || len(files) > 1) {
			return errors.New("standard input (-) is read alone and without --follow")
		}
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	st := submitState{Files: map[string]fileState{}}
	if *statePath != "" {
		if raw, err := os.ReadFile(*statePath); err == nil {
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("reading --state %s: %w", *statePath, err)
			}
			if st.Files == nil {
				st.Files = map[string]fileState{}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// The offsets are written after the log acknowledges events: a
		// directory they cannot go to must fail before anything is sent,
		// not after (the next run would send those events again).
		if fi, err := os.Stat(filepath.Dir(*statePath)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--state %s: its directory %s does not exist", *statePath, filepath.Dir(*statePath))
		}
	}
	var stats submitStats
	where := newLineIndex()
	sub, err := client.NewSubmitter(client.SubmitterConfig{
		URL: c.base, APIKey: c.key, BatchSize: *batch, BufferSize: 4 * *batch,
		// Warnings only: a log it cannot reach, answers it cannot read.
		// A rejected event is said once, by OnRejected, with its line.
		Logger: slog.New(withoutRejected{slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})}),
		OnRejected: func(ev event.Event, err error) {
			stats.errors.Add(1)
			line, ok := where.take(ev)
			if !ok {
				line = fmt.Sprintf("event %q of service %q", ev.ID, ev.Service)
			}
			why := err.Error()
			if re := (*client.RejectedError)(nil); errors.As(err, &re) {
				// A reason of no field reads ": why".
				why = fmt.Sprintf("(%d) %s", re.Status, strings.TrimPrefix(re.Reason, ": "))
			}
			fmt.Fprintf(stderr, "%s: rejected by the log: %s\n", line, strings.ReplaceAll(why, "\n", "; "))
		},
	})
	if err != nil {
		return err
	}
	cfg := ingest.Config{Service: *service}
	var wg sync.WaitGroup
	var srcs []*source
	for _, path := range files {
		s := &source{path: path, format: *format, cfg: cfg, sub: sub, where: where, stats: &stats, stderr: stderr, follow: *follow, poll: *poll}
		if prev, ok := st.Files[path]; ok && path != "-" {
			s.resume = &prev
		}
		srcs = append(srcs, s)
	}
	p := newProgress(stderr, "lines", -1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	for _, s := range srcs {
		wg.Go(func() {
			if err := s.run(readCtx); err != nil && readCtx.Err() == nil {
				stats.errors.Add(1)
				fmt.Fprintf(stderr, "%s: %v\n", s.path, err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	save := func(ctx context.Context) error {
		snap := map[string]fileState{}
		for _, s := range srcs {
			if fp, off, ok := s.acked(); ok {
				snap[s.path] = fileState{Fingerprint: fp, Offset: off}
			}
		}
		where.mark()
		if err := sub.Flush(ctx); err != nil {
			return err
		}
		where.forget() // answered: a rejection of theirs has been said
		if *statePath == "" {
			return nil
		}
		for k, v := range snap {
			st.Files[k] = v
		}
		raw, _ := json.MarshalIndent(st, "", "  ")
		return ledger.WriteFileAtomic(*statePath, raw, 0o600)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last int64
loop:
	for {
		select {
		case <-done:
			break loop
		case <-ctx.Done():
			break loop
		case <-tick.C:
			if err := save(ctx); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stderr, "saving offsets: %v\n", err)
			}
		}
		n := stats.lines.Load()
		p.add(n - last)
		last = n
	}
	stopReading()
	<-done
	// Send what was read and save its offsets, even when interrupted.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitFinalWait)
	defer cancel()
	err = save(fctx)
	if cerr := sub.Close(fctx); err == nil {
		err = cerr
	}
	p.add(stats.lines.Load() - last)
	p.done()
	ss := sub.Stats()
	fmt.Fprintf(stdout, "%d lines: %d events, %d skipped (no access in them), %d errors; the log acknowledged %d (%d already there), rejected %d, dropped %d\n",
		stats.lines.Load(), stats.events.Load(), stats.skipped.Load(), stats.errors.Load(), ss.Acknowledged, ss.Duplicates, ss.Rejected, ss.Dropped)
	switch {
	case ss.Dropped > 0:
		return fmt.Errorf("not every event was sent: %d dropped without an answer (they may be in the log or not; submitting the same input again sends them, and appends nothing twice): %v",
			ss.Dropped, err)
	case err != nil:
		return fmt.Errorf("not every event was sent: %w", err)
	}
	if stats.errors.Load() > 0 {
		return fmt.Errorf("%d lines could not be read or were rejected (see above)", stats.errors.Load())
	}
	return nil
}

// submitFinalWait bounds the wait for the log's answers once reading has
// ended (or was interrupted); the events still unanswered are dropped.
var submitFinalWait = 30 * time.Second

// withoutRejected is a slog.Handler without the Submitter's record of a
// rejected event: OnRejected says it, with the line it came from.
type withoutRejected struct{ slog.Handler }

func (h withoutRejected) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "accessledger: event rejected" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h withoutRejected) WithAttrs(attrs []slog.Attr) slog.Handler {
	return withoutRejected{h.Handler.WithAttrs(attrs)}
}

func (h withoutRejected) WithGroup(name string) slog.Handler {
	return withoutRejected{h.Handler.WithGroup(name)}
}

// lineIndex maps the events submitted and not yet answered to the lines
// they were read from (FILE:LINE), so that a rejection names its line.
// Every Flush forgets what was submitted before it began: the log has
// answered it.
type lineIndex struct {
	// gate makes adding an event and submitting it one step for mark:
	// what is added before the mark is submitted before the Flush.
	gate      sync.RWMutex
	mu        sync.Mutex
	cur, prev map[string][]lineRef // by service and id
}

// lineRef is a line an event was read from, and the hash of the event.
type lineRef struct {
	sum  [8]byte
	line string
}

func newLineIndex() *lineIndex {
	return &lineIndex{cur: map[string][]lineRef{}}
}

func lineKey(ev *event.Event) string { return ev.Service + "\x00" + ev.ID }

func eventSum(canonical []byte) (sum [8]byte) {
	h := sha256.Sum256(canonical)
	copy(sum[:], h[:])
	return sum
}

// submit records that ev (of canonical form canonical) is line, and
// submits it.
func (x *lineIndex) submit(ctx context.Context, sub *client.Submitter, ev *event.Event, canonical []byte, line string) error {
	x.gate.RLock()
	defer x.gate.RUnlock()
	k := lineKey(ev)
	x.mu.Lock()
	x.cur[k] = append(x.cur[k], lineRef{eventSum(canonical), line})
	x.mu.Unlock()
	return sub.Submit(ctx, *ev)
}

// take returns (and forgets) the line ev was read from: of the lines
// with its service and id, the one of the same event, else the first.
func (x *lineIndex) take(ev event.Event) (string, bool) {
	k, sum := lineKey(&ev), eventSum(ev.Canonical())
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range []map[string][]lineRef{x.prev, x.cur} {
		refs := m[k]
		for i, r := range refs {
			if r.sum == sum {
				m[k] = append(refs[:i:i], refs[i+1:]...)
				if len(m[k]) == 0 {
					delete(m, k)
				}
				return r.line, true
			}
		}
	}
	for _, m := range []map[string][]lineRef{x.prev, x.cur} {
		if refs := m[k]; len(refs) > 0 {
			return refs[0].line, true
		}
	}
	return "", false
}

// mark is called before a Flush: what was submitted until now is
// answered when it returns.
func (x *lineIndex) mark() {
	x.gate.Lock()
	defer x.gate.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.prev == nil {
		x.prev = x.cur
	} else {
		for k, v := range x.cur {
			x.prev[k] = append(x.prev[k], v...)
		}
	}
	x.cur = map[string][]lineRef{}
}

// forget is called after a Flush succeeded: it forgets what was submitted
// before its mark.
func (x *lineIndex) forget() {
	x.mu.Lock()
	x.prev = nil
	x.mu.Unlock()
}

// source is one file (or standard input) being read. Its goroutine owns
// every field but the acknowledged position (ackMu).
type source struct {
	path, format string
	cfg          ingest.Config
	sub          *client.Submitter
	where        *lineIndex
	stats        *submitStats
	stderr       io.Writer
	follow       bool
	poll         time.Duration
	resume       *fileState
	absPath      string // of path, for lineID

	ackMu      sync.Mutex
	ackFP      string // fingerprint and offset of what is submitted
	ackOffset  int64
	ackDefined bool
}

// acked returns the fingerprint and the offset below which every line is
// submitted (answered once the Submitter is flushed).
func (s *source) acked() (string, int64, bool) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return s.ackFP, s.ackOffset, s.ackDefined
}

func (s *source) setAcked(fp string, off int64) {
	s.ackMu.Lock()
	s.ackFP, s.ackOffset, s.ackDefined = fp, off, true
	s.ackMu.Unlock()
}

// fingerprint identifies a file by its first line: a file renamed by
// rotation keeps it, a new file at the same path has another.
func fingerprint(firstLine []byte) string {
	h := sha256.Sum256(firstLine)
	return hex.EncodeToString(h[:8])
}

// maxLineBytes bounds a line (its newline excluded): a longer one is
// reported and skipped, without being held in memory. The log stores an
// event in at most event.MaxEntrySize (64 KiB) bytes, so no longer line
// can be one; 16 times that leaves room for what parsing drops (JSON
// whitespace and escapes, unknown access log fields) and still bounds
// what a line without a newline in sight costs: a 300 MB one was read
// whole before it was found not to be JSON.
const maxLineBytes = 1 << 20

// firstLine reads a file's first complete line, nil if it has none yet;
// for a first line longer than maxLineBytes, its first maxLineBytes
// bytes (which, unlike the line, can be read, and do not change as it
// grows).
func firstLine(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readFirstLine(f), nil
}

// readFirstLine is firstLine of what r reads.
func readFirstLine(r io.Reader) []byte {
	l, err := bufio.NewReaderSize(io.LimitReader(r, maxLineBytes+1), 64<<10).ReadBytes('\n')
	switch {
	case err == nil:
		return l
	case len(l) > maxLineBytes: // no newline in maxLineBytes+1 bytes
		return l[:maxLineBytes]
	}
	return nil
}

// lineReader reads lines, and holds at most maxLineBytes of one.
type lineReader struct {
	br      *bufio.Reader
	pending []byte // the line being read, or the first maxLineBytes of a longer one
	long    int64  // of a longer line, how many bytes were read; else 0
	taken   bool   // next returned the line in pending
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next line, its newline included, and its length in
// the input. A line longer than maxLineBytes comes back as long, with its
// first maxLineBytes bytes; the rest was read and discarded. An error
// (io.EOF: no newline yet) leaves what was read of the line for the next
// call, or for rest. The line is valid until the next call.
func (lr *lineReader) next() (line []byte, n int64, long bool, err error) {
	if lr.taken {
		lr.pending, lr.long, lr.taken = lr.pending[:0], 0, false
	}
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if lr.long == 0 {
			c := len(chunk)
			if err == nil {
				c-- // the newline is not counted
			}
			if len(lr.pending)+c > maxLineBytes {
				lr.long = int64(len(lr.pending))
				lr.pending = append(lr.pending, chunk[:maxLineBytes-len(lr.pending)]...)
			}
		}
		if lr.long > 0 {
			lr.long += int64(len(chunk))
		} else {
			lr.pending = append(lr.pending, chunk...)
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil:
			lr.taken = true
			return lr.pending, lr.read(), lr.long > 0, nil
		}
		return nil, 0, false, err
	}
}

// read is how many bytes of the input the line being read (or returned)
// spans.
func (lr *lineReader) read() int64 {
	if lr.long > 0 {
		return lr.long
	}
	return int64(len(lr.pending))
}

// partial is how many bytes of a line without its newline yet were read.
func (lr *lineReader) partial() int64 {
	if lr.taken {
		return 0
	}
	return lr.read()
}

// rest returns the line without a newline at the end of the input, as
// next returns lines; n is 0 if there is none.
func (lr *lineReader) rest() (line []byte, n int64, long bool) {
	if lr.taken || lr.read() == 0 {
		return nil, 0, false
	}
	lr.taken = true
	return lr.pending, lr.read(), lr.long > 0
}

func (s *source) run(ctx context.Context) error {
	if s.path == "-" {
		// Named "stdin" in the ids (lineID), and fingerprinted by its
		// first line as a file is: the same input piped twice is
		// recognised by the log. (With a random name for each run, it
		// was appended twice.)
		return s.read(ctx, os.Stdin, "", 0, false)
	}
	if r := s.resume; r != nil {
		// A file rotated away since the last run: finish it first.
		if l, _ := firstLine(s.path); l == nil || fingerprint(l) != r.Fingerprint {
			if l1, _ := firstLine(s.path + ".1"); l1 != nil && fingerprint(l1) == r.Fingerprint {
				if err := s.readPath(ctx, s.path+".1", r.Offset, false); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(s.stderr, "%s: not the file of the saved offset (rotated, and %s.1 is not it either): reading it from the start\n", s.path, s.path)
			}
			s.resume = nil
		}
	}
	var off int64
	if s.resume != nil {
		off = s.resume.Offset
	}
	return s.readPath(ctx, s.path, off, s.follow)
}

// readPath reads a file from offset; following, it goes on to the file
// that replaces it at the same path.
func (s *source) readPath(ctx context.Context, path string, offset int64, follow bool) error {
	for {
		f, err := os.Open(path)
		if err != nil {
			if follow && errors.Is(err, os.ErrNotExist) {
				// Between a rotation's rename and the new file.
				if err := pause(ctx, s.poll); err != nil {
					return err
				}
				continue
			}
			return err
		}
		fp := ""
		if l, _ := firstLine(path); l != nil {
			fp = fingerprint(l)
		}
		if info, err := f.Stat(); err == nil && offset > info.Size() {
			offset = 0 // truncated since the offset was saved
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		err = s.read(ctx, f, fp, offset, follow)
		f.Close()
		if !errors.Is(err, errReplaced) {
			return err
		}
		offset = 0
	}
}

// errReplaced means the followed file was rotated away or truncated: the
// path is to be opened again.
var errReplaced = errors.New("file replaced")

// read reads lines from r, which is at offset, submitting their events;
// following, it waits for more at the end and returns errReplaced when
// the path names another file (rotation) or the file shrank
// (truncation).
func (s *source) read(ctx context.Context, r io.Reader, fp string, offset int64, follow bool) error {
	f, _ := r.(*os.File)
	lr := newLineReader(r)
	lineNo := 1
	if offset > 0 && f != nil {
		lineNo = countLines(f.Name(), offset) + 1
	}
	// one submits a line of n bytes at offset, and moves past it; false
	// if interrupted (the line is read again next time).
	one := func(l []byte, n int64, long bool) bool {
		if fp == "" && offset == 0 {
			fp = fingerprint(l)
		}
		if long {
			s.stats.lines.Add(1)
			s.stats.errors.Add(1)
			fmt.Fprintf(s.stderr, "%s:%d: line longer than %d bytes\n", s.path, lineNo, maxLineBytes)
		} else if !s.line(ctx, fp, offset, lineNo, bytes.TrimSuffix(l, []byte("\n"))) {
			return false
		}
		offset += n
		lineNo++
		s.setAcked(fp, offset)
		return true
	}
	// lines submits the complete lines there are; io.EOF at the end.
	lines := func() error {
		for {
			l, n, long, err := lr.next()
			if err != nil {
				return err
			}
			if !one(l, n, long) {
				return ctx.Err()
			}
		}
	}
	for {
		if err := lines(); err != io.EOF {
			return err
		}
		if !follow {
			if l, n, long := lr.rest(); n > 0 && !one(l, n, long) {
				return ctx.Err()
			}
			return nil
		}
		if err := pause(ctx, s.poll); err != nil {
			return err
		}
		if f == nil {
			continue
		}
		switch replaced(f, s.path, fp, offset+lr.partial()) {
		case truncated:
			// What the file holds now is new from its start; its
			// bytes after the offset are not the old file's rest.
			return errReplaced
		case rotated:
			// A writer may still append to the old file until it
			// reopens the path: read it until it has stopped growing
			// for a few polls, then move on.
			for idle := 0; ; {
				at := offset + lr.partial()
				if err := lines(); err != io.EOF {
					return err
				}
				if offset+lr.partial() == at {
					idle++
				} else {
					idle = 0
				}
				if idle == 3 {
					break
				}
				if err := pause(ctx, s.poll); err != nil {
					return err
				}
			}
			// A last line without its newline.
			if l, n, long := lr.rest(); n > 0 && !one(l, n, long) {
				return ctx.Err()
			}
			return errReplaced
		}
	}
}

// change is what became of a followed file.
type change int

const (
	unchanged change = iota
	rotated          // the path names another file
	truncated        // the file was emptied, and maybe written again
)

// replaced reports whether path now names another file than f (rotated),
// or f was truncated: it shrank below the offset read, or its first line
// is no longer the one of fingerprint fp. logrotate's copytruncate with a
// busy writer leaves the file larger than the offset by the time it is
// looked at again; only the first line tells.
func replaced(f *os.File, path, fp string, read int64) change {
	cur, err := os.Stat(path)
	if err != nil {
		return unchanged // mid-rotation: keep reading the old one
	}
	mine, err := f.Stat()
	switch {
	case err != nil || !os.SameFile(cur, mine):
		return rotated
	case mine.Size() < read:
		return truncated
	case fp == "" || read == 0:
		return unchanged
	}
	// The first line of the file now; none while the writer has not
	// finished it, which tells nothing yet.
	if first := readFirstLine(io.NewSectionReader(f, 0, maxLineBytes+1)); first != nil && fingerprint(first) != fp {
		return truncated
	}
	return unchanged
}

func countLines(path string, upTo int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 64<<10)
	for upTo > 0 {
		k, err := f.Read(buf[:min(int64(len(buf)), upTo)])
		n += bytes.Count(buf[:k], []byte("\n"))
		upTo -= int64(k)
		if err != nil {
			break
		}
	}
	return n
}

// line turns one line into an event and submits it. It returns false if
// ctx ended before the event could be submitted.
func (s *source) line(ctx context.Context, fp string, offset int64, lineNo int, line []byte) bool {
	s.stats.lines.Add(1)
	format := s.format
	if format == "auto" {
		f, ok := ingest.Detect(line)
		if !ok {
			if len(bytes.TrimSpace(line)) == 0 {
				s.stats.skipped.Add(1)
				return true
			}
			s.stats.errors.Add(1)
			fmt.Fprintf(s.stderr, "%s:%d: not JSON, a combined access log line or an sshd syslog line (give --format)\n", s.path, lineNo)
			return true
		}
		s.format, format = f, f // a file is of one format
	}
	ev, err := ingest.Parse(format, line, s.cfg)
	if errors.Is(err, ingest.ErrSkip) {
		s.stats.skipped.Add(1)
		return true
	}
	var canonical []byte
	if err == nil {
		if ev.ID == "" {
			ev.ID = s.lineID(fp, offset, line)
		}
		// Check it as the log will, to report the line here.
		canonical = ev.Canonical()
		_, err = event.Parse(canonical, event.ParseOptions{Now: time.Now(), Receiving: true})
	}
	if err != nil {
		s.stats.errors.Add(1)
		fmt.Fprintf(s.stderr, "%s:%d: %s\n", s.path, lineNo, strings.ReplaceAll(err.Error(), "\n", "; "))
		return true
	}
	if err := s.where.submit(ctx, s.sub, ev, canonical, fmt.Sprintf("%s:%d", s.path, lineNo)); err != nil {
		return false
	}
	s.stats.events.Add(1)
	return true
}

// lineID derives the id of an event read without one: the hash of the
// file's path (as given, so that a rotated file's lines keep theirs), its
// first line, the line's offset and the line. Submitting the same line
// again gives the same id (the log keeps it once); a line of another file,
// or of a file that replaced this one with the same first line, does
// not, even at the same offset (with the first line and offset alone it
// did, and the log then kept one of them, or refused the batch).
// Standard input's path is "stdin" (no absolute path is), so the same
// input twice has the same ids; input that begins with another line, or
// has the line at another offset, does not.
func (s *source) lineID(fp string, offset int64, line []byte) string {
	if s.absPath == "" {
		s.absPath = s.path
		if s.path == "-" {
			s.absPath = "stdin"
		} else if abs, err := filepath.Abs(s.path); err == nil {
			s.absPath = abs
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", s.absPath, fp, offset)
	h.Write(line)
	return "ln-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
