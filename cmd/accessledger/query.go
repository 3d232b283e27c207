package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/accessledger/accessledger/event"
)

const queryUsage = `usage: accessledger query [flags] [filters]

Searches the log through the server's query API (GET /v1/events) with an
auditor (or admin) key. Filters combine with AND; a filter given several
times matches any of its values. Output: a table (default), json, or a
stream of ndjson, csv or ocsf (OCSF 1.3 events). --count prints how many
events match; --top FIELD the most frequent values of a field.

examples:
  accessledger query --url http://127.0.0.1:8080 --api-key-file data/admin.key --actor alice --since 24h
  accessledger query --action login --outcome failure --cidr 203.0.113.0/24 --count
  accessledger query --top source.ip --action login --outcome failure --n 5
  accessledger query --service billing --format csv -o billing.csv

flags:
`

// serverFlags are the flags of the commands that talk to a server.
type serverFlags struct {
	url, key, keyFile string
	envKey            string // ACCESSLEDGER_API_KEY
}

func (f *serverFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("ACCESSLEDGER_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&f.url, "url", def, "the server's base URL (env ACCESSLEDGER_URL)")
	// Not the flag's default: the flag package prints defaults in the
	// usage text, and a mistyped flag or -h showed the key.
	f.envKey = getenv("ACCESSLEDGER_API_KEY")
	fs.StringVar(&f.key, "key", "", "API key (default: env ACCESSLEDGER_API_KEY; prefer --api-key-file)")
	fs.StringVar(&f.keyFile, "api-key-file", "", "file holding the API key")
}

// client returns an HTTP client of the server.
func (f *serverFlags) client() (*apiClient, error) {
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want an http or https URL", f.url)
	}
	key := cmp.Or(f.key, f.envKey)
	if f.keyFile != "" {
		raw, err := os.ReadFile(f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("reading the API key: %w", err)
		}
		key = strings.TrimSpace(string(raw))
	}
	if key == "" {
		return nil, errors.New("an API key is required: --api-key-file FILE, --key KEY or ACCESSLEDGER_API_KEY")
	}
	return &apiClient{base: strings.TrimSuffix(f.url, "/"), key: key, hc: &http.Client{}}, nil
}

// apiClient calls the server's API with a key.
type apiClient struct {
	base, key string
	hc        *http.Client
}

// get sends GET path?query and returns the response if its status is
// 200; any other status becomes an error carrying the server's message.
func (c *apiClient) get(ctx context.Context, path string, query url.Values, accept string) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
}

// getJSON decodes a 200 answer into v.
func (c *apiClient) getJSON(ctx context.Context, path string, query url.Values, v any) error {
	resp, err := c.get(ctx, path, query, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// filterFlags are the event filters, each repeatable.
type filterFlags struct {
	values       map[string]*multiFlag
	since, until string
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// filterFlagNames maps flag names to query parameters.
var filterFlagNames = []struct{ flag, param, usage string }{
	{"actor", "actor", "actor.id"},
	{"source-ip", "source_ip", "source.ip, an address"},
	{"cidr", "cidr", "source.ip within a prefix (203.0.113.0/24, 2001:db8::/32)"},
	{"action", "action", "action (login, read, ...)"},
	{"category", "category", "category"},
	{"outcome", "outcome", "outcome (success, failure, unknown)"},
	{"service", "service", "service"},
	{"resource-type", "resource_type", "resource.type"},
	{"resource-id", "resource_id", "resource.id"},
	{"tenant", "tenant", "tenant"},
	{"submitted-by", "submitted_by", "the name of the API key that submitted an event"},
	{"kind", "kind", "leaf kind (event, alert, response, admin)"},
}

func (f *filterFlags) register(fs *flag.FlagSet) {
	f.values = map[string]*multiFlag{}
	for _, ff := range filterFlagNames {
		m := &multiFlag{}
		f.values[ff.param] = m
		fs.Var(m, ff.flag, "match "+ff.usage+" (repeatable)")
	}
	fs.StringVar(&f.since, "since", "", "events at or after this time: RFC 3339, or a duration before now (24h)")
	fs.StringVar(&f.until, "until", "", "events before this time: RFC 3339, or a duration before now")
}

// query returns the filters as query parameters.
func (f *filterFlags) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for param, m := range f.values {
		for _, v := range *m {
			q.Add(param, v)
		}
	}
	for name, v := range map[string]string{"since": f.since, "until": f.until} {
		if v == "" {
			continue
		}
		t, err := parseWhen(v, now)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
		q.Set(name, t.UTC().Format(time.RFC3339Nano))
	}
	return q, nil
}

// parseWhen reads an RFC 3339 time, parsed as the log parses event times
// (event.ParseTime), or a duration before now. time.Parse took a ','
// before the fraction and cut digits finer than a nanosecond, so that
// --since ...,1234000001Z asked for ...,1234Z without a word.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if t, err := event.ParseTime(v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if _, frac, ok := strings.Cut(v, "."); ok && len(frac) > 9 && strings.Trim(frac[:10], "0123456789") == "" {
		return time.Time{}, fmt.Errorf("%q has more than 9 fractional digits: the log keeps times to the nanosecond", v)
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-24T10:00:00.5Z: a '.' before at most 9 fractional digits, an offset from -23:59 to +23:59) nor a duration (24h)", v)
}

// parseArgs parses flags that may come after positional arguments, and
// returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// isTerminal reports whether w is a terminal (for progress output).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a progress line on a terminal.
type progress struct {
	w     io.Writer
	what  string
	total int64 // -1 if unknown
	n     int64
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, what string, total int64) *progress {
	if !isTerminal(w) {
		return nil
	}
	return &progress{w: w, what: what, total: total, start: time.Now()}
}

func (p *progress) add(n int64) {
	if p == nil {
		return
	}
	p.n += n
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	rate := float64(p.n) / max(time.Since(p.start).Seconds(), 1e-3)
	if p.total > 0 {
		const width = 30
		done := min(width, int(p.n*width/p.total))
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d %s %.0f/s ", strings.Repeat("=", done), strings.Repeat(" ", width-done), p.n, p.total, p.what, rate)
		return
	}
	fmt.Fprintf(p.w, "\r%d %s %.0f/s ", p.n, p.what, rate)
}

func (p *progress) done() {
	if p == nil {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}

// queryCmd runs "accessledger query".
func queryCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), queryUsage); fs.PrintDefaults() }
	var sf serverFlags
	sf.register(fs, getenv)
	var ff filterFlags
	ff.register(fs)
	format := fs.String("format", "table", "table, json, ndjson, csv or ocsf")
	limit := fs.Int("limit", 0, "at most this many events (default: 100 for table and json, with a note on standard error if more match; all for ndjson, csv and ocsf)")
	order := fs.String("order", "asc", "asc (oldest first) or desc (newest first)")
	out := fs.String("o", "", "write to this file instead of standard output (- for standard output)")
	count := fs.Bool("count", false, "print only how many events match")
	top := fs.String("top", "", "print the most frequent values of this field (source.ip, actor.id, service, action, ...)")
	topN := fs.Int("n", 10, "with --top, how many values")
	csvRaw := fs.Bool("csv-raw", false, "with --format csv, write every value as recorded (by default a cell beginning with =, +, -, @, tab or CR is prefixed with ', so that a spreadsheet does not run it as a formula)")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	q, err := ff.query(time.Now())
	if err != nil {
		return err
	}
	if *order != "asc" && *order != "desc" {
		return fmt.Errorf("--order %q: want asc or desc", *order)
	}
	switch *format {
	case "table", "json", "ndjson", "csv", "ocsf":
	default:
		return fmt.Errorf("--format %q: want table, json, ndjson, csv or ocsf", *format)
	}
	if *csvRaw {
		if *format != "csv" || *count || *top != "" {
			return errors.New("--csv-raw goes with --format csv (and neither --count nor --top)")
		}
		q.Set("csv_raw", "true")
	}
	// -o: written beside the file and renamed over it once complete, so
	// that a query that fails leaves the file as it was.
	w, commit, err := openOutput(*out, stdout)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	note, err := runQuery(ctx, c, q, *count, *top, *topN, *format, *order, *limit, bw, stderr)
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing the output: %w", ferr)
	}
	if err = commit(err); err == nil && note != "" {
		fmt.Fprintln(stderr, note) // after the table, not above it
	}
	return err
}

// runQuery asks the server and writes the answer to bw. It returns a
// note for standard error when the answer is cut short (the table and
// json stop at their limit).
func runQuery(ctx context.Context, c *apiClient, q url.Values, count bool, top string, topN int, format, order string, limit int, bw io.Writer, stderr io.Writer) (string, error) {
	switch {
	case count:
		var r struct {
			Count       uint64 `json:"count"`
			IndexedSize uint64 `json:"indexed_size"`
		}
		if err := c.getJSON(ctx, "/v1/events/count", q, &r); err != nil {
			return "", err
		}
		fmt.Fprintln(bw, r.Count)
		return "", nil
	case top != "":
		q.Set("field", top)
		q.Set("n", strconv.Itoa(topN))
		var r struct {
			Top []struct {
				Value string `json:"value"`
				Count uint64 `json:"count"`
			} `json:"top"`
		}
		if err := c.getJSON(ctx, "/v1/events/top", q, &r); err != nil {
			return "", err
		}
		tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tCOUNT\n", strings.ToUpper(top))
		for _, vc := range r.Top {
			// Values are other people's text, as in the table of
			// events: no escape sequences or bidirectional overrides
			// on the terminal.
			fmt.Fprintf(tw, "%s\t%d\n", oneLine(vc.Value), vc.Count)
		}
		return "", tw.Flush()
	}
	q.Set("order", order)
	switch format {
	case "table", "json":
		if limit <= 0 {
			limit = defaultPageLimit
		}
		return queryPages(ctx, c, q, limit, format, bw)
	}
	return "", queryStream(ctx, c, q, limit, format, bw, stderr)
}

// defaultPageLimit is how many events the table and json show without
// --limit.
const defaultPageLimit = 100

// queryEvent is one event of a page.
type queryEvent struct {
	Index    uint64          `json:"index"`
	LeafHash string          `json:"leaf_hash"`
	Entry    json.RawMessage `json:"entry,omitempty"`
	Base64   string          `json:"entry_base64,omitempty"`
}

// queryPages follows the JSON pages up to limit events and prints them as
// a table or as one JSON array. A page may hold fewer events than it was
// asked for and still have more after it (the server bounds a page's
// bytes too): the pages end when one is empty or has no next, never
// because one is short. When they stop at limit with a next page, it
// returns a note saying how many more match (cutNote).
func queryPages(ctx context.Context, c *apiClient, q url.Values, limit int, format string, w io.Writer) (string, error) {
	var events []queryEvent
	more := false // the last page has a next: there may be more matches
	for len(events) < limit {
		want := min(1000, limit-len(events))
		q.Set("limit", strconv.Itoa(want))
		var page struct {
			Events []queryEvent `json:"events"`
			Next   string       `json:"next"`
		}
		if err := c.getJSON(ctx, "/v1/events", q, &page); err != nil {
			return "", err
		}
		events = append(events, page.Events...)
		more = page.Next != "" && len(page.Events) > 0
		if !more {
			break
		}
		q.Set("cursor", page.Next)
	}
	note := ""
	if more && len(events) >= limit {
		note = cutNote(ctx, c, q, len(events), format)
	}
	if format == "json" {
		if events == nil {
			events = []queryEvent{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return note, enc.Encode(events)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tSERVICE\tACTOR\tSOURCE\tACTION\tOUTCOME\tRESOURCE")
	for _, e := range events {
		// The log keeps C1 controls and bidirectional overrides a
		// client sent (evil\u202egnp.exe shows as evilexe.png):
		// neutralised here, for the terminal.
		r := tableRow(e.Entry)
		fmt.Fprintf(tw, "%d", e.Index)
		for _, cell := range r {
			fmt.Fprintf(tw, "\t%s", oneLine(cell))
		}
		fmt.Fprintln(tw)
	}
	return note, tw.Flush()
}

// tableRow returns the cells of an entry in the table, after its index:
// time, service, actor, source, action, outcome and resource. An event
// fills them as named. The other kinds put "(kind)" in the service
// column and what says most about them in the others:
//
//	alert     the rule in action, its level in outcome, the group's
//	          actor.id and source.ip in actor and source, the rest of the
//	          group (field=value) in resource
//	response  who in actor ("by": an API key's name, a responder, the
//	          server), the action (" to " the responder of a delivery, the
//	          decision's type for a decision) in action, a delivery's last
//	          status in outcome, a decision's address or range in source,
//	          the alert (alert/N), decision (decision/N) or digest
//	          (digest/DAY) in resource
//	admin     "by" in actor, the action in action, the key (key/NAME) in
//	          resource
//
// The entry is decoded leniently: a member missing or of another shape
// leaves its cell empty, as for leaves an earlier version wrote.
func tableRow(entry json.RawMessage) [7]string {
	var leaf struct {
		Kind string          `json:"kind"`
		Body json.RawMessage `json:"body"`
	}
	json.Unmarshal(entry, &leaf)
	kind := cmp.Or(leaf.Kind, "event")
	var r [7]string // time, service, actor, source, action, outcome, resource
	switch kind {
	case "event":
		var b struct {
			Time    string `json:"time"`
			Service string `json:"service"`
			Actor   struct {
				ID string `json:"id"`
			} `json:"actor"`
			Source struct {
				IP string `json:"ip"`
			} `json:"source"`
			Action   string `json:"action"`
			Outcome  string `json:"outcome"`
			Resource *struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			} `json:"resource"`
		}
		json.Unmarshal(leaf.Body, &b)
		r = [7]string{b.Time, b.Service, b.Actor.ID, b.Source.IP, b.Action, b.Outcome, ""}
		if b.Resource != nil {
			r[6] = strings.Trim(b.Resource.Type+"/"+b.Resource.ID, "/")
		}
		return r
	case "alert":
		var b struct {
			Time string `json:"time"`
			Rule struct {
				ID    string `json:"id"`
				Level string `json:"level"`
			} `json:"rule"`
			Group []struct {
				Field string `json:"field"`
				Value string `json:"value"`
			} `json:"group"`
		}
		json.Unmarshal(leaf.Body, &b)
		r[0], r[4], r[5] = b.Time, b.Rule.ID, b.Rule.Level
		var rest []string
		for _, g := range b.Group {
			switch {
			case g.Field == "actor.id" && r[2] == "":
				r[2] = g.Value
			case g.Field == "source.ip" && r[3] == "":
				r[3] = g.Value
			default:
				rest = append(rest, g.Field+"="+g.Value)
			}
		}
		r[6] = strings.Join(rest, ",")
	case "response":
		var b struct {
			Action    string  `json:"action"`
			Time      string  `json:"time"`
			Alert     *uint64 `json:"alert"`
			By        string  `json:"by"`
			Responder string  `json:"responder"`
			Status    int     `json:"status"`
			Decision  *struct {
				ID    uint64 `json:"id"`
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"decision"`
			Digest *struct {
				Start string `json:"start"`
			} `json:"digest"`
		}
		json.Unmarshal(leaf.Body, &b)
		r[0], r[2], r[4] = b.Time, b.By, b.Action
		if b.Responder != "" {
			r[4] += " to " + b.Responder
		}
		if b.Status != 0 {
			r[5] = "status " + strconv.Itoa(b.Status)
		}
		switch {
		case b.Alert != nil:
			r[6] = "alert/" + strconv.FormatUint(*b.Alert, 10)
		case b.Decision != nil:
			r[6] = "decision/" + strconv.FormatUint(b.Decision.ID, 10)
		case b.Digest != nil:
			day, _, _ := strings.Cut(b.Digest.Start, "T")
			r[6] = "digest/" + day
		}
		if b.Decision != nil {
			r[3] = b.Decision.Value
			r[4] = strings.TrimSpace(r[4] + " " + b.Decision.Type)
		}
	case "admin":
		var b struct {
			Action string `json:"action"`
			Time   string `json:"time"`
			By     string `json:"by"`
			Key    string `json:"key"`
		}
		json.Unmarshal(leaf.Body, &b)
		r[0], r[2], r[4] = b.Time, b.By, b.Action
		if b.Key != "" {
			r[6] = "key/" + b.Key
		}
	}
	r[1] = "(" + kind + ")"
	return r
}

// cutNote says what a table (or json) of shown events, stopped at its
// limit, leaves out: how many more match, by the count of the same
// filters, or, if the count fails, that more may. In log order the last
// page always has a next (the log grows), so the count is also what tells
// a query with exactly limit matches from a cut one: nothing is said then.
func cutNote(ctx context.Context, c *apiClient, q url.Values, shown int, format string) string {
	what := "the table"
	if format == "json" {
		what = "the JSON"
	}
	var r struct {
		Count uint64 `json:"count"`
	}
	if err := c.getJSON(ctx, "/v1/events/count", q2filters(q), &r); err != nil {
		return fmt.Sprintf("query: %s stops at %d events, and more may match: use --limit N, or --format ndjson or csv for every match", what, shown)
	}
	if r.Count <= uint64(shown) {
		return ""
	}
	return fmt.Sprintf("query: %s stops at %d events; %d more match: use --limit N, or --format ndjson or csv for every match", what, shown, r.Count-uint64(shown))
}

// queryStream copies a stream (ndjson, csv, ocsf) to w, with a progress
// bar on a terminal.
func queryStream(ctx context.Context, c *apiClient, q url.Values, limit int, format string, w io.Writer, stderr io.Writer) error {
	total := int64(-1)
	if isTerminal(stderr) {
		var r struct {
			Count uint64 `json:"count"`
		}
		if err := c.getJSON(ctx, "/v1/events/count", q2filters(q), &r); err == nil {
			total = int64(r.Count)
			if limit > 0 {
				total = min(total, int64(limit))
			}
		}
	}
	q.Set("format", format)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	resp, err := c.get(ctx, "/v1/events", q, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	p := newProgress(stderr, "events", total)
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	first := format == "csv" // the CSV header is not an event
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return werr
			}
			if line[len(line)-1] == '\n' {
				if first {
					first = false
				} else {
					p.add(1)
				}
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("the stream was cut: %w", err)
		}
	}
	p.done()
	return nil
}

// q2filters keeps only the filter parameters of q.
func q2filters(q url.Values) url.Values {
	f := url.Values{}
	for _, ff := range filterFlagNames {
		if v, ok := q[ff.param]; ok {
			f[ff.param] = v
		}
	}
	for _, k := range []string{"since", "until"} {
		if v, ok := q[k]; ok {
			f[k] = v
		}
	}
	return f
}
