package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/detect"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

const rulesUsage = `usage: accessledger rules <command> [flags] [DIR]

commands:
  lint DIR                   check the Sigma rules under DIR: YAML, fields, modifiers, references, duplicate ids, tests' events
  test DIR                   run every rule's inline tests and print a pass/fail table (exit status 1 on a failure,
                             or with lint's problems if the rules would not load)
  run DIR --events FILE      replay NDJSON events (or log leaves, or entries as GET /v1/entries/N and query --format ndjson
                             give them) from FILE ("-": stdin) through the rules and print the alerts as NDJSON

Without DIR, the commands use the default rule pack built into accessledger.

flags (every command):
  --default-pack             also load the default pack with DIR (for rules that refer to its building blocks)
  --lists DIR                named lists (<name>.txt) that replace the starter lists of the same name
  --timezone ZONE            time zone of hour and weekday matching (default UTC)
flags (run):
  --events FILE              the events, one JSON object per line: an event, a leaf {"kind",...} or an entry
                             {"index","leaf_hash","entry"} (which keeps its log index; other lines count from 0)
  --lateness DURATION        how late an event may arrive and still count in windows (default 2m)
  --geoip-city FILE          MaxMind City (or Country) database to enrich source.geo
  --geoip-asn FILE           MaxMind ASN database to enrich source.asn
`

// rulesCmd runs "accessledger rules lint|test|run".
func rulesCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, rulesUsage)
		if len(args) == 0 {
			return errors.New("a command is required: lint, test or run")
		}
		return nil
	}
	cmd := args[0]
	fs := flag.NewFlagSet("rules "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rulesUsage) }
	withDefault := fs.Bool("default-pack", false, "also load the default rule pack")
	listsDir := fs.String("lists", "", "named lists directory")
	tz := fs.String("timezone", "UTC", "time zone of hour and weekday matching")
	eventsFile := fs.String("events", "", "NDJSON events to replay (run)")
	lateness := fs.Duration("lateness", detect.DefaultLateness, "allowed lateness of events in windows (run)")
	geoCity := fs.String("geoip-city", "", "MaxMind City or Country database (run)")
	geoASN := fs.String("geoip-asn", "", "MaxMind ASN database (run)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("one rules directory at most, got %q", pos)
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("--timezone: %w", err)
	}
	dir := ""
	if len(pos) == 1 {
		dir = pos[0]
	}
	rs, lists, err := loadRuleDirs(dir, *withDefault || dir == "", *listsDir)
	cfg := detect.Config{Lists: lists, Location: loc, Lateness: *lateness}
	switch cmd {
	case "lint":
		return rulesLint(rs, err, cfg, stdout)
	case "test":
		return rulesTest(rs, err, cfg, stdout)
	case "run":
		if err != nil {
			return err
		}
		if *eventsFile == "" {
			return errors.New("run needs --events FILE (NDJSON, - for standard input)")
		}
		enr, err := openEnricher(*geoCity, *geoASN)
		if err != nil {
			return err
		}
		if enr != nil {
			defer enr.Close()
		}
		return rulesRun(rs, cfg, enr, *eventsFile, stdout, stderr)
	}
	return fmt.Errorf("unknown rules command %q (lint, test or run)", cmd)
}

// parseInterleaved parses flags that may come before or after positional
// arguments, as in "rules run DIR --events FILE".
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// loadRuleDirs loads the rules of dir (and the default pack if asked) and
// the named lists: the starter lists, replaced name by name by those of
// listsDir.
func loadRuleDirs(dir string, withDefault bool, listsDir string) (*detect.RuleSet, detect.Lists, error) {
	lists := detect.DefaultLists()
	if listsDir != "" {
		own, err := detect.LoadLists(os.DirFS(listsDir), ".")
		if err != nil {
			return nil, nil, fmt.Errorf("--lists %s: %w", listsDir, err)
		}
		lists = lists.With(own)
	}
	rs := &detect.RuleSet{}
	var errs detect.Errors
	load := func(fsys fs.FS, name string) error {
		sub, err := detect.ParseDirNamed(fsys, ".", name)
		var es detect.Errors
		switch {
		case errors.As(err, &es):
			errs = append(errs, es...)
		case err != nil:
			return err
		}
		if sub != nil {
			rs.Rules = append(rs.Rules, sub.Rules...)
		}
		return nil
	}
	if withDefault {
		if err := load(detect.DefaultRules(), "default-pack"); err != nil {
			return nil, nil, err
		}
	}
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, nil, err
		}
		if !st.IsDir() {
			return nil, nil, fmt.Errorf("%s is not a directory", dir)
		}
		if err := load(os.DirFS(dir), strings.TrimSuffix(dir, "/")); err != nil {
			return nil, nil, err
		}
	}
	// Ids and references across the whole set.
	if err := rs.Check(); err != nil {
		var es detect.Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
		}
	}
	if len(errs) > 0 {
		return rs, lists, errs
	}
	return rs, lists, nil
}

// openEnricher opens the MaxMind databases given; nil if none is.
func openEnricher(city, asn string) (*detect.Enricher, error) {
	return detect.OpenEnricher(city, asn)
}

// rulesLint reports every problem of the rules: loading, compiling
// (fields, modifiers, lists, references) and the tests' events.
func rulesLint(rs *detect.RuleSet, loadErr error, cfg detect.Config, stdout io.Writer) error {
	if err := printProblems(rs, loadErr, cfg, stdout); err != nil {
		return err
	}
	var enrich []string
	for _, r := range rs.Rules {
		if detect.NeedsEnrichment(rs, r) && r.Enabled() {
			enrich = append(enrich, r.ID)
		}
	}
	n := len(rs.Rules)
	fmt.Fprintf(stdout, "%d %s: ok\n", n, plural(n, "rule", "rules"))
	if len(enrich) > 0 {
		fmt.Fprintf(stdout, "note: %d rules read source.geo or source.asn, which events carry only if submitters send them or the server enriches them from MaxMind databases: %s\n",
			len(enrich), strings.Join(enrich, ", "))
	}
	return nil
}

// printProblems prints every problem of the rules, as lint finds them
// (loading, compiling as serve does, the tests' events), and returns an
// error counting them if there is one.
func printProblems(rs *detect.RuleSet, loadErr error, cfg detect.Config, stdout io.Writer) error {
	errs, err := lintProblems(rs, loadErr, cfg)
	if err != nil {
		return err
	}
	for _, e := range errs {
		fmt.Fprintln(stdout, e)
	}
	if len(errs) == 0 {
		return nil
	}
	n := 0
	if rs != nil {
		n = len(rs.Rules)
	}
	return fmt.Errorf("%d %s in %d %s", len(errs), plural(len(errs), "problem", "problems"), n, plural(n, "rule", "rules"))
}

// lintProblems returns the problems of the rules: loadErr's, then, if
// they loaded, those of compiling them and of their tests' events. An
// error that names no rule is returned as the error.
func lintProblems(rs *detect.RuleSet, loadErr error, cfg detect.Config) (detect.Errors, error) {
	var errs detect.Errors
	if loadErr != nil && !errors.As(loadErr, &errs) {
		return nil, loadErr
	}
	if rs == nil || len(errs) > 0 {
		return errs, nil
	}
	if _, err := detect.Compile(rs, cfg); err != nil {
		var es detect.Errors
		if !errors.As(err, &es) {
			return nil, err
		}
		errs = append(errs, es...)
	}
	if err := rs.CheckTests(); err != nil {
		var es detect.Errors
		if errors.As(err, &es) {
			errs = append(errs, es...)
		}
	}
	return errs, nil
}

// rulesTest runs the inline tests and prints a table. Rules that lint
// finds problems in (which serve would refuse) fail, with the problems,
// whatever their tests.
func rulesTest(rs *detect.RuleSet, loadErr error, cfg detect.Config, stdout io.Writer) error {
	if err := printProblems(rs, loadErr, cfg, stdout); err != nil {
		return fmt.Errorf("%w: the rules do not load (rules lint)", err)
	}
	results := rs.RunTests(cfg)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tRULE\tTEST\tWANT\tGOT\tWHERE")
	failed := 0
	for _, r := range results {
		status := "pass"
		got := fmt.Sprint(r.Got)
		if !r.Passed() {
			status = "FAIL"
			failed++
		}
		if r.Err != nil {
			got = "error: " + strings.ReplaceAll(r.Err.Error(), "\n", "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s:%d\n", status, r.Rule.ID, r.Test, r.Want, got, r.Rule.File, r.Line)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d rule tests failed", failed, len(results))
	}
	if len(results) == 0 {
		fmt.Fprintln(stdout, "note: no rule has inline tests")
	}
	return nil
}

// rulesRun replays NDJSON events through the rules and prints each alert
// as one JSON line. A line is an event, a leaf of the log
// ({"kind":"event",...}), or an entry as the API gives it
// ({"index","leaf_hash","entry"}: GET /v1/entries/N, query's NDJSON). An
// entry keeps its log index; other lines take the index after the line
// before (from 0), and are received at their event time unless the leaf
// says otherwise.
func rulesRun(rs *detect.RuleSet, cfg detect.Config, enr *detect.Enricher, file string, stdout, stderr io.Writer) error {
	e, err := detect.Compile(rs, cfg)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	byRule := map[string]int{}
	emit := func(as []*event.Alert) {
		for _, a := range as {
			out.Write(a.Canonical())
			out.WriteByte('\n')
			byRule[a.Rule.ID]++
		}
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), event.MaxEntrySize*2)
	var index uint64 // the next line's, unless it gives its own
	records, line := 0, 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, i, err := replayRecord(b, index)
		if err != nil && !errors.Is(err, detect.ErrNotEvent) {
			return fmt.Errorf("%s:%d: %w", file, line, err)
		}
		records++
		index = i + 1
		if rec == nil {
			continue // an alert, a response, an admin action
		}
		if enr != nil {
			enr.Enrich(rec.Event)
		}
		emit(e.Process(rec))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	emit(e.Close())
	out.Flush()
	ids := make([]string, 0, len(byRule))
	total := 0
	for id, n := range byRule {
		ids = append(ids, fmt.Sprintf("%s %d", id, n))
		total += n
	}
	sort.Strings(ids)
	st := e.Stats()
	fmt.Fprintf(stderr, "%d events, %d alerts", records, total)
	if len(ids) > 0 {
		fmt.Fprintf(stderr, " (%s)", strings.Join(ids, ", "))
	}
	if st.Late > 0 {
		fmt.Fprintf(stderr, "; %d events arrived too late for correlation windows", st.Late)
	}
	fmt.Fprintln(stderr)
	return nil
}

// replayRecord decodes one line of rules run's input, whose log index is
// index unless the line gives its own: an event, a leaf of the log, or an
// entry as the API answers it, {"index","leaf_hash","entry"} (or
// "entry_base64" for an entry that is not JSON). It returns the record
// (nil, with detect.ErrNotEvent, for a leaf of another kind) and its
// index. Each shape is decoded strictly: a member it does not have is an
// error, as is an entry without its index. The leaf hash is not checked
// (accessledger verify proves entries; a rule author may edit one).
func replayRecord(b []byte, index uint64) (*detect.Record, uint64, error) {
	switch firstMember(b) {
	case "kind", "received_at", "body":
		rec, err := detect.DecodeLeaf(index, b)
		return rec, index, err
	case "index", "leaf_hash", "entry", "entry_base64":
		var w struct {
			Index       *uint64        `json:"index"`
			LeafHash    *string        `json:"leaf_hash"`
			Entry       jsontext.Value `json:"entry"`
			EntryBase64 *string        `json:"entry_base64"`
		}
		if err := jsonv2.Unmarshal(b, &w, jsonv2.RejectUnknownMembers(true)); err != nil {
			return nil, index, fmt.Errorf("decoding an entry {\"index\",\"leaf_hash\",\"entry\"}: %w", err)
		}
		if w.Index == nil {
			return nil, index, errors.New(`an entry {"index","leaf_hash","entry"} without its index`)
		}
		leaf := []byte(w.Entry)
		switch {
		case (w.Entry == nil) == (w.EntryBase64 == nil):
			return nil, *w.Index, fmt.Errorf("entry %d: want one of entry and entry_base64", *w.Index)
		case w.EntryBase64 != nil:
			var err error
			if leaf, err = base64.StdEncoding.DecodeString(*w.EntryBase64); err != nil {
				return nil, *w.Index, fmt.Errorf("entry %d: entry_base64: %w", *w.Index, err)
			}
		}
		rec, err := detect.DecodeLeaf(*w.Index, leaf)
		if err != nil && !errors.Is(err, detect.ErrNotEvent) {
			err = fmt.Errorf("entry %d: %w", *w.Index, err)
		}
		return rec, *w.Index, err
	}
	if b[0] == '[' {
		return nil, index, errors.New("a JSON array, not one JSON object a line (for query's output, use query --format ndjson)")
	}
	ev, err := event.Parse(b, event.ParseOptions{})
	if err != nil {
		return nil, index, err
	}
	return &detect.Record{Index: index, ReceivedAt: ev.Time, Event: ev}, index, nil
}

// firstMember returns the name of the first member of the JSON object b,
// or "" if b does not start as an object with a member.
func firstMember(b []byte) string {
	// What the log and the API write, without a decoder.
	for _, k := range []string{"kind", "index"} {
		if len(b) > len(k)+3 && b[0] == '{' && b[1] == '"' && string(b[2:2+len(k)]) == k && b[2+len(k)] == '"' {
			return k
		}
	}
	d := jsontext.NewDecoder(bytes.NewReader(b))
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		return ""
	}
	t, err := d.ReadToken()
	if err != nil || t.Kind() != '"' {
		return ""
	}
	return t.String()
}

// DetectConfig is the detect: section of the serve configuration.
type DetectConfig struct {
	// Enabled runs the detector (default true).
	Enabled bool `yaml:"enabled"`
	// DefaultRules loads the built-in rule pack (default true).
	DefaultRules bool `yaml:"default_rules"`
	// RulesDir holds the operator's own Sigma rules (*.yml), loaded with
	// the built-in pack.
	RulesDir string `yaml:"rules_dir"`
	// ListsDir holds named lists (<name>.txt) that replace the starter
	// lists of the same name.
	ListsDir string `yaml:"lists_dir"`
	// Timezone is the zone of hour and weekday matching (default UTC).
	Timezone string `yaml:"timezone"`
	// Lateness is how late an event may arrive and still count in
	// correlation windows (default 2m).
	Lateness time.Duration `yaml:"lateness"`
	// MaxGroups bounds the groups each correlation keeps (default
	// 200000); MaxEventsPerGroup the events of one group's window
	// (default 1000).
	MaxGroups         int `yaml:"max_groups"`
	MaxEventsPerGroup int `yaml:"max_events_per_group"`
	// GeoIPCity and GeoIPASN are MaxMind databases (GeoLite2/GeoIP2 City
	// or Country, and ASN) that fill in source.geo and source.asn of
	// events without them. Off when empty; nothing is downloaded.
	GeoIPCity string `yaml:"geoip_city"`
	GeoIPASN  string `yaml:"geoip_asn"`
	// MaxLag bounds how many leaves the detector may lag the log once it
	// has caught up (default 16384): beyond it, appends get 503 with
	// Retry-After until it is within it again, so that alerts come
	// within a bounded delay at any load. 0: no bound.
	MaxLag int64 `yaml:"max_lag"`
}

func defaultDetectConfig() DetectConfig {
	return DetectConfig{Enabled: true, DefaultRules: true, Timezone: "UTC", Lateness: detect.DefaultLateness, MaxLag: 16384}
}

// detectorDir is the detector's own Badger directory in the data
// directory: its cursor, window state and alert index.
const detectorDir = "detect"

// buildEngine loads and compiles the configured rules and opens the GeoIP
// databases, writing nothing: serve calls it before it creates anything,
// so a bad rule stops the start with file and line. It returns nil when
// detection is off.
func buildEngine(cfg DetectConfig) (*detect.Engine, *detect.Enricher, error) {
	if !cfg.Enabled {
		return nil, nil, nil
	}
	if !cfg.DefaultRules && cfg.RulesDir == "" {
		return nil, nil, errors.New("detect: default_rules is false and no rules_dir is set: there is nothing to run (set detect: {enabled: false} to turn detection off)")
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, nil, fmt.Errorf("detect timezone %q: %w", cfg.Timezone, err)
	}
	rs, lists, err := loadRuleDirs(cfg.RulesDir, cfg.DefaultRules, cfg.ListsDir)
	if err != nil {
		return nil, nil, fmt.Errorf("detect rules:\n%w", err)
	}
	e, err := detect.Compile(rs, detect.Config{Lists: lists, Location: loc, Lateness: cfg.Lateness,
		MaxGroups: cfg.MaxGroups, MaxEventsPerGroup: cfg.MaxEventsPerGroup})
	if err != nil {
		return nil, nil, fmt.Errorf("detect rules:\n%w", err)
	}
	enr, err := detect.OpenEnricher(cfg.GeoIPCity, cfg.GeoIPASN)
	if err != nil {
		return nil, nil, err
	}
	return e, enr, nil
}

// runningDetector is the server's detector and how to stop it.
type runningDetector struct {
	d      *detect.Detector
	enr    *detect.Enricher
	cancel context.CancelFunc
	done   chan error
}

// startDetector opens the detector's state in the data directory and runs
// it until stop. A nil engine (detection off) gives a nil detector.
func startDetector(ctx context.Context, dataDir string, maxLag int64, e *detect.Engine, enr *detect.Enricher, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) (*runningDetector, error) {
	if e == nil {
		return nil, nil
	}
	if missing := e.NeedsEnrichment(); len(missing) > 0 && (!enr.HasGeo() || !enr.HasASN()) {
		log.Warn("some rules read source.geo or source.asn: events that carry neither are not matched by them; configure detect geoip_city and geoip_asn (MaxMind databases) to fill them in",
			"rules", strings.Join(missing, ","), "geoip_city", enr.HasGeo(), "geoip_asn", enr.HasASN())
	}
	d, err := detect.OpenDetector(ctx, detect.DetectorConfig{
		Log: l, Engine: e, Dir: filepath.Join(dataDir, detectorDir), Enricher: enr,
		Logger: log.With("component", "detect"), Registerer: reg, MaxLag: uint64(maxLag),
	})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	rd := &runningDetector{d: d, enr: enr, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := d.Run(rctx)
		if err != nil {
			log.Error("detector stopped; alerts resume from its saved cursor after a restart", "err", err)
		}
		rd.done <- err
	}()
	return rd, nil
}

// detections returns what the API serves alerts and rules from: nil when
// detection is off (a nil interface, not a nil pointer).
func (r *runningDetector) detections() api.Detections {
	if r == nil {
		return nil
	}
	return r.d
}

// stop ends the detector: it appends the alerts pending and saves its
// state (the log must still be open), then closes its database.
func (r *runningDetector) stop() error {
	if r == nil {
		return nil
	}
	r.cancel()
	err := <-r.done
	err = errors.Join(err, r.d.Close())
	if r.enr != nil {
		err = errors.Join(err, r.enr.Close())
	}
	return err
}

// plural returns one if n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
