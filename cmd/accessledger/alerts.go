package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	evbundle "github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/event"
)

const alertsUsage = `usage: accessledger alerts <command> [flags]

Works the alert feed of a server whose responders are on, with a key of
the responder role (auditor may list, watch and read incidents; admin may
do everything).

commands:
  list              print the alerts, oldest first: list [--after N] [--limit N] [--status open] [--json]
  watch             follow the alerts as they arrive (Server-Sent Events, resumed after a cut):
                    watch [--from-now | --after N] [--json] [--max N]
  ack ID            acknowledge the alert at log index ID: ack ID [--note TEXT]
  resolve ID        resolve it: resolve ID [--note TEXT]
  incident ID       print the alert, its evidence events and its responses; --verify checks every
                    entry's inclusion proof offline with the log's key (--vkey), -o FILE writes the
                    evidence bundle (for "accessledger verify FILE")

The server and key come from --url (env ACCESSLEDGER_URL) and
--api-key-file, --key or ACCESSLEDGER_API_KEY.

examples:
  accessledger alerts list --status open
  accessledger alerts watch --from-now
  accessledger alerts ack 4711 --note "looking into it"
  accessledger alerts incident 4711 --verify --vkey data/log.vkey

Run "accessledger alerts <command> -h" for a command's flags.
`

// alertsCmd runs "accessledger alerts".
func alertsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, alertsUsage)
		return errors.New(`want "alerts list|watch|ack|resolve|incident"; see alerts -h`)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, alertsUsage)
		return flag.ErrHelp
	case "list":
		return alertsList(ctx, args[1:], getenv, stdout, stderr)
	case "watch":
		return alertsWatch(ctx, args[1:], getenv, stdout, stderr)
	case "ack":
		return alertsRespond(ctx, "ack", args[1:], getenv, stdout, stderr)
	case "resolve":
		return alertsRespond(ctx, "resolve", args[1:], getenv, stdout, stderr)
	case "incident":
		return alertsIncident(ctx, args[1:], getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown alerts command %q: want list, watch, ack, resolve or incident", args[0])
}

// alertsFlagSet returns the flag set of an alerts command, with the
// server flags.
func alertsFlagSet(name, usage string, getenv func(string) string, stderr io.Writer) (*flag.FlagSet, *serverFlags) {
	fs := flag.NewFlagSet("alerts "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: accessledger alerts %s %s\n\nflags:\n", name, usage)
		fs.PrintDefaults()
	}
	sf := &serverFlags{}
	sf.register(fs, getenv)
	return fs, sf
}

// feedAlert is an alert of the feed as the server sends it.
type feedAlert struct {
	Index      uint64          `json:"index"`
	LeafHash   string          `json:"leaf_hash"`
	ReceivedAt time.Time       `json:"received_at"`
	Alert      json.RawMessage `json:"alert"`
	Status     string          `json:"status"`
}

// alertLine is the one-line form of an alert: time, level, rule, status,
// group and summary.
func (a *feedAlert) fields() []string {
	var al struct {
		Time time.Time `json:"time"`
		Rule struct {
			ID    string `json:"id"`
			Level string `json:"level"`
		} `json:"rule"`
		Group []struct {
			Field string `json:"field"`
			Value string `json:"value"`
		} `json:"group"`
		Summary string `json:"summary"`
	}
	json.Unmarshal(a.Alert, &al)
	var group []string
	for _, g := range al.Group {
		group = append(group, g.Field+"="+g.Value)
	}
	return []string{strconv.FormatUint(a.Index, 10), al.Time.UTC().Format(time.RFC3339), al.Rule.Level, al.Rule.ID, a.Status,
		strings.Join(group, ","), oneLine(al.Summary)}
}

// oneLine keeps text on one line of a table.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r), event.IsBidiControl(r):
			// Never an escape sequence on the reader's terminal, nor
			// a bidirectional override that shows other text than is
			// stored: notes, outputs, events are other people's text.
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

const alertsHeader = "INDEX\tTIME\tLEVEL\tRULE\tSTATUS\tGROUP\tSUMMARY"

// alertsList runs "accessledger alerts list": it pages through the feed
// (GET /v1/alerts?after=N) and prints a table or a JSON array.
func alertsList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, sf := alertsFlagSet("list", "[--after N] [--limit N] [--status open|acknowledged|resolved] [--json]", getenv, stderr)
	after := fs.Int64("after", -1, "list the alerts after this log index (-1: from the first)")
	limit := fs.Int("limit", 100, "print at most this many alerts")
	status := fs.String("status", "", "only alerts of this status: open, acknowledged or resolved")
	asJSON := fs.Bool("json", false, "print a JSON array of the alerts, as the server sends them")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	switch *status {
	case "", "open", "acknowledged", "resolved":
	default:
		return fmt.Errorf("--status %q: want open, acknowledged or resolved", *status)
	}
	if *limit < 1 {
		return fmt.Errorf("--limit %d: want 1 or more", *limit)
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	var out []feedAlert
	for next := *after; len(out) < *limit; {
		var page struct {
			Alerts []feedAlert `json:"alerts"`
			Next   int64       `json:"next"`
		}
		q := url.Values{"after": {strconv.FormatInt(next, 10)}, "limit": {strconv.Itoa(min(1000, *limit-len(out)))}}
		if *status != "" {
			q.Set("limit", "1000")
		}
		if err := c.getJSON(ctx, "/v1/alerts", q, &page); err != nil {
			return err
		}
		for _, a := range page.Alerts {
			if (*status == "" || a.Status == *status) && len(out) < *limit {
				out = append(out, a)
			}
		}
		if len(page.Alerts) == 0 || page.Next == next {
			break
		}
		next = page.Next
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	if *asJSON {
		if out == nil {
			out = []feedAlert{}
		}
		enc := json.NewEncoder(bw)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, alertsHeader)
	for i := range out {
		fmt.Fprintln(tw, strings.Join(out[i].fields(), "\t"))
	}
	return tw.Flush()
}

// alertsWatch runs "accessledger alerts watch": it follows GET
// /v1/alerts/stream and prints each alert as it arrives, reconnecting
// with Last-Event-ID after a cut, so that no alert is missed or printed
// twice.
func alertsWatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, sf := alertsFlagSet("watch", "[--from-now | --after N] [--json] [--max N]", getenv, stderr)
	after := fs.Int64("after", -1, "start after this log index (-1: from the first alert)")
	fromNow := fs.Bool("from-now", false, "only alerts appended from now on")
	asJSON := fs.Bool("json", false, "print each alert as one line of JSON, as the server sends it")
	maxN := fs.Int("max", 0, "stop after this many alerts (0: follow until interrupted)")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	if *fromNow && *after != -1 {
		return errors.New("give --from-now or --after, not both")
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	w := &alertWatcher{c: c, stdout: stdout, stderr: stderr, json: *asJSON, max: *maxN, fromNow: *fromNow}
	if *after >= 0 {
		w.lastID = strconv.FormatInt(*after, 10)
	}
	return w.run(ctx)
}

// alertWatcher follows the alert stream across reconnections.
type alertWatcher struct {
	c              *apiClient
	stdout, stderr io.Writer
	json, fromNow  bool
	max, printed   int
	lastID         string // the last id the stream gave: where to resume
	streamed       bool   // lastID came from the stream, not from --after
	retry          time.Duration
	tw             *tabwriter.Writer
}

// errStreamRefused is a stream answered with an error status: retrying
// would not help.
var errStreamRefused = errors.New("the server refused the stream")

func (w *alertWatcher) run(ctx context.Context) error {
	w.retry = 2 * time.Second
	if !w.json {
		w.tw = tabwriter.NewWriter(w.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w.tw, alertsHeader)
		w.tw.Flush()
	}
	for {
		err := w.stream(ctx)
		if w.max > 0 && w.printed >= w.max {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errStreamRefused) {
			return err
		}
		fmt.Fprintf(w.stderr, "alerts watch: the stream was cut (%v); reconnecting in %v after alert %s\n", err, w.retry, orNone(w.lastID))
		select {
		case <-time.After(w.retry):
		case <-ctx.Done():
			return nil
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none yet)"
	}
	return s
}

// stream reads one connection of the stream until it ends.
func (w *alertWatcher) stream(ctx context.Context) error {
	q := url.Values{}
	if w.lastID == "" && w.fromNow {
		q.Set("from", "now")
	}
	// --after is the user's: sent as after=, so that a refusal names
	// what they gave; an id the stream gave resumes as SSE does.
	if w.lastID != "" && !w.streamed {
		q.Set("after", w.lastID)
	}
	u := w.c.base + "/v1/alerts/stream"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.c.key)
	req.Header.Set("Accept", "text/event-stream")
	if w.lastID != "" && w.streamed {
		req.Header.Set("Last-Event-ID", w.lastID)
	}
	resp, err := w.c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %w", errStreamRefused, apiAnswerError(resp))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var id, ev string
	var data []byte
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			// The end of a block: an event if it has data.
			if id != "" {
				w.lastID, w.streamed = id, true
			}
			if ev == "alert" && len(data) > 0 {
				if err := w.print(data); err != nil {
					return err
				}
				if w.max > 0 && w.printed >= w.max {
					return nil
				}
			}
			id, ev, data = "", "", nil
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "id":
			id = string(value)
		case "event":
			ev = string(value)
		case "data":
			data = append(data, value...)
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil && ms > 0 {
				w.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// print prints one alert event.
func (w *alertWatcher) print(data []byte) error {
	w.printed++
	if w.json {
		_, err := fmt.Fprintf(w.stdout, "%s\n", data)
		return err
	}
	var a feedAlert
	if err := json.Unmarshal(data, &a); err != nil {
		return fmt.Errorf("an event is not an alert: %w", err)
	}
	fmt.Fprintln(w.tw, strings.Join(a.fields(), "\t"))
	return w.tw.Flush()
}

// apiAnswerError turns an error answer into an error carrying the
// server's message.
func apiAnswerError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
}

// alertsRespond runs "accessledger alerts ack|resolve ID".
func alertsRespond(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, sf := alertsFlagSet(verb, "ID [--note TEXT]", getenv, stderr)
	noteText := fs.String("note", "", fmt.Sprintf("why, in at most %d bytes (recorded in the log with your key's name)", event.MaxResponseNote))
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("give the alert's ID (its log index): alerts %s ID", verb)
	}
	id, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("alert ID %q: want a log index", pos[0])
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"note": *noteText})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/alerts/%d/%s", c.base, id, verb), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return apiAnswerError(resp)
	}
	var rec struct {
		Index    uint64 `json:"index"`
		LeafHash string `json:"leaf_hash"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	done := map[string]string{"ack": "acknowledged", "resolve": "resolved"}[verb]
	fmt.Fprintf(stdout, "%s alert %d: recorded at log index %d (leaf hash %s)\n", done, id, rec.Index, rec.LeafHash)
	return nil
}

// incidentAnswer is the answer of GET /v1/incidents/:id.
type incidentAnswer struct {
	Index          uint64    `json:"index"`
	Status         string    `json:"status"`
	Alert          feedAlert `json:"alert"`
	Evidence       []uint64  `json:"evidence"`
	EvidenceCount  int       `json:"evidence_count"`
	Responses      []uint64  `json:"responses"`
	Processed      uint64    `json:"processed"`
	CheckpointSize uint64    `json:"checkpoint_size"`
	Pending        []uint64  `json:"pending"`
	Bundle         string    `json:"bundle"`
}

// alertsIncident runs "accessledger alerts incident ID".
func alertsIncident(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, sf := alertsFlagSet("incident", "ID [--verify --vkey KEY] [-o FILE] [--json]", getenv, stderr)
	verify := fs.Bool("verify", false, "verify every entry's inclusion proof and the checkpoint's signature offline, with --vkey")
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or a file holding it (for --verify)")
	out := fs.String("o", "", "write the incident's evidence bundle to this file")
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("give the alert's ID (its log index): alerts incident ID")
	}
	id, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil {
		return fmt.Errorf("alert ID %q: want a log index", pos[0])
	}
	var vkey string
	if *verify {
		if *vkeyArg == "" {
			return errors.New("--verify needs --vkey: the log's verifier key, as the operator publishes it (GET /v1/log, <data>/log.vkey)")
		}
		if vkey, err = readVKeyArg(*vkeyArg); err != nil {
			return err
		}
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	resp, err := c.get(ctx, fmt.Sprintf("/v1/incidents/%d", id), nil, "")
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the incident: %w", err)
	}
	var inc incidentAnswer
	if err := json.Unmarshal(raw, &inc); err != nil {
		return fmt.Errorf("reading the incident: %w", err)
	}
	var proven *provenIncident
	if *verify {
		if proven, err = verifyIncident(&inc, vkey); err != nil {
			return fmt.Errorf("incident %d does not verify: %w", id, err)
		}
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(inc.Bundle), 0o644); err != nil {
			return err
		}
	}
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	if *asJSON {
		_, err := bw.Write(append(raw, '\n'))
		return err
	}
	printIncident(bw, &inc)
	if proven != nil {
		fmt.Fprintf(bw, "\nverified: %s\n", summaryLine(proven.summary))
		fmt.Fprintf(bw, "  proven: the alert, %d evidence events and %d responses; ", proven.evidence, proven.responses)
		if proven.complete {
			fmt.Fprintf(bw, "the status %s follows from the proven responses\n", proven.status)
		} else {
			fmt.Fprintf(bw, "the proven responses make the status %s; responses %s are beyond the checkpoint\n", proven.status, indexList(inc.Pending))
		}
	}
	if *out != "" {
		fmt.Fprintf(bw, "wrote the evidence bundle to %s\n", *out)
	}
	return nil
}

// printIncident prints an incident for a person.
func printIncident(w io.Writer, inc *incidentAnswer) {
	f := inc.Alert.fields()
	fmt.Fprintf(w, "alert %d  %s  %s  rule %s  status %s\n", inc.Index, f[1], f[2], f[3], inc.Status)
	if f[5] != "" {
		fmt.Fprintf(w, "  group:    %s\n", f[5])
	}
	fmt.Fprintf(w, "  summary:  %s\n", f[6])
	fmt.Fprintf(w, "  evidence: %s (%d events)", indexList(inc.Evidence), inc.EvidenceCount)
	if inc.EvidenceCount > len(inc.Evidence) {
		fmt.Fprintf(w, " (the first %d listed)", len(inc.Evidence))
	}
	fmt.Fprintln(w)
	entries := bundleEntryMap(inc.Bundle)
	fmt.Fprintf(w, "  responses (%d):\n", len(inc.Responses))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, i := range inc.Responses {
		line := fmt.Sprintf("    %d\t(beyond the checkpoint: not in the bundle yet)", i)
		if e, ok := entries[i]; ok {
			if l, r, err := event.DecodeResponseLeaf(e); err == nil {
				what := r.Action
				if r.Responder != "" {
					what += " to " + r.Responder
				}
				line = fmt.Sprintf("    %d\t%s\t%s\tby %s\t%s", i, l.ReceivedAt.UTC().Format(time.RFC3339), what, r.By, oneLine(r.Note))
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintf(w, "  proofs against the checkpoint of size %d", inc.CheckpointSize)
	if len(inc.Pending) > 0 {
		fmt.Fprintf(w, "; not yet covered (ask again after the next checkpoint): %s", indexList(inc.Pending))
	}
	fmt.Fprintln(w)
}

func indexList(xs []uint64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatUint(x, 10)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// bundleEntryMap returns the entries of a bundle by index (no checks).
func bundleEntryMap(bundle string) map[uint64][]byte {
	out := map[uint64][]byte{}
	for _, line := range strings.Split(bundle, "\n") {
		if !strings.HasPrefix(line, `{"index":`) {
			continue
		}
		var e struct {
			Index uint64          `json:"index"`
			Entry json.RawMessage `json:"entry"`
		}
		if json.Unmarshal([]byte(strings.TrimSuffix(line, ",")), &e) == nil && e.Entry != nil {
			out[e.Index] = e.Entry
		}
	}
	return out
}

// provenIncident is what verifyIncident proved.
type provenIncident struct {
	summary             *evbundle.Summary
	evidence, responses int
	// status is what the proven responses make the alert's status;
	// complete reports that every response is proven.
	status   string
	complete bool
}

// verifyIncident checks an incident offline: its bundle with the
// evidence verifier (the log's signature on the checkpoint, every
// entry's inclusion proof, the file's encoding), and that the incident
// says what the proven entries say: the alert is the entry at its index,
// its evidence is the alert's list, each response is a response leaf
// about it, every entry not pending is in the bundle, and the status
// follows from the responses.
func verifyIncident(inc *incidentAnswer, vkey string) (*provenIncident, error) {
	sum, err := evbundle.Verify(strings.NewReader(inc.Bundle), vkey)
	if err != nil {
		return nil, err
	}
	if sum.Size != inc.CheckpointSize {
		return nil, fmt.Errorf("the bundle's checkpoint has size %d, the incident says %d", sum.Size, inc.CheckpointSize)
	}
	entries := bundleEntryMap(inc.Bundle)
	need := func(i uint64, what string) ([]byte, bool, error) {
		e, ok := entries[i]
		switch {
		case ok:
			return e, true, nil
		case i >= sum.Size && slices.Contains(inc.Pending, i):
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("%s %d is missing from the bundle", what, i)
	}
	p := &provenIncident{summary: sum, status: "open"}
	entry, ok, err := need(inc.Index, "the alert")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("the alert %d is beyond the checkpoint of size %d: ask again after the next checkpoint", inc.Index, sum.Size)
	}
	_, a, err := event.DecodeAlertLeaf(entry)
	if err != nil {
		return nil, fmt.Errorf("entry %d is not an alert: %w", inc.Index, err)
	}
	var served event.Alert
	if err := json.Unmarshal(inc.Alert.Alert, &served); err != nil || !bytes.Equal(served.Canonical(), a.Canonical()) || inc.Alert.Index != inc.Index {
		return nil, fmt.Errorf("the alert the server describes is not the proven entry %d", inc.Index)
	}
	if !slices.Equal(a.Evidence, inc.Evidence) || a.EvidenceCount != inc.EvidenceCount {
		return nil, fmt.Errorf("the evidence %v (%d) is not the proven alert's %v (%d)", inc.Evidence, inc.EvidenceCount, a.Evidence, a.EvidenceCount)
	}
	for _, i := range a.Evidence {
		if _, ok, err := need(i, "evidence event"); err != nil {
			return nil, err
		} else if ok {
			p.evidence++
		}
	}
	status, complete := "open", true
	for _, i := range inc.Responses {
		e, ok, err := need(i, "response")
		if err != nil {
			return nil, err
		}
		if !ok {
			complete = false
			continue
		}
		_, r, err := event.DecodeResponseLeaf(e)
		if err != nil || r.Alert == nil || *r.Alert != inc.Index {
			return nil, fmt.Errorf("entry %d is not a response about alert %d", i, inc.Index)
		}
		p.responses++
		switch {
		case r.Action == event.ActionResolved:
			status = "resolved"
		case r.Action == event.ActionAcknowledged && status == "open":
			status = "acknowledged"
		}
	}
	if complete && status != inc.Status {
		return nil, fmt.Errorf("the status %q does not follow from the proven responses, which make it %q", inc.Status, status)
	}
	p.status, p.complete = status, complete
	return p, nil
}
