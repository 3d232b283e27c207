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
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/accessledger/accessledger/detect"
	"github.com/accessledger/accessledger/detect/sim"
	"github.com/accessledger/accessledger/event"
)

const simulateUsage = `usage: accessledger simulate [flags]

Generates realistic synthetic access traffic: users with home cities, time
zones, working hours, offices behind NAT, home and mobile networks, devices,
typos, travel, admins, HR staff and service accounts, plus labelled attack
scenarios, one kind per rule of the default pack (after a learning period).
The same seed gives the same events.

Output: NDJSON events on standard output (or --out), the labels as JSON
(--labels); or straight to a server (--server); --evaluate runs the rules
in-process and prints, per scenario, whether its rule detected it and, per
rule, its false alerts per 100,000 benign events.

flags:
`

// simulate generates synthetic traffic.
func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same events")
	users := fs.Int("users", 500, "number of users (plus service accounts, one per hundred users)")
	days := fs.Int("days", 21, "days of traffic")
	learning := fs.Int("learning", 15, "days before the first attack")
	attacks := fs.Int("attacks", 2, "injections of each attack scenario")
	start := fs.String("start", "", "first day (YYYY-MM-DD, UTC); default: --days ago")
	out := fs.String("out", "", `NDJSON events file ("-" for standard output; the default unless --server or --evaluate)`)
	labels := fs.String("labels", "", "file to write the attack labels to (JSON)")
	server := fs.String("server", "", "post the events to this accessledger (http://127.0.0.1:8080)")
	keyFile := fs.String("key-file", "", "file holding a submitter API key for --server (or env ACCESSLEDGER_API_KEY)")
	batch := fs.Int("batch", 500, "events per request to --server")
	rate := fs.Int("rate", 0, "with --server: events per second to sustain (0: as fast as the server takes them)")
	evaluate := fs.Bool("evaluate", false, "run the rules in-process and print the detection quality")
	rulesDir := fs.String("rules", "", "with --evaluate: rules directory (default: the default pack)")
	withDefault := fs.Bool("default-pack", false, "with --evaluate and --rules: also load the default pack")
	listsDir := fs.String("lists", "", "with --evaluate: named lists directory")
	fs.Usage = func() {
		fmt.Fprint(stderr, simulateUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// The simulator takes zero as its default: a value below 1 here is
	// a mistake, not a request for the default.
	for _, f := range []struct {
		name string
		v    int
	}{{"users", *users}, {"days", *days}, {"learning", *learning}, {"attacks", *attacks}} {
		if f.v < 1 {
			return fmt.Errorf("--%s must be at least 1, got %d", f.name, f.v)
		}
	}
	if *batch < 1 {
		return fmt.Errorf("--batch must be at least 1, got %d", *batch)
	}
	if *rate < 0 {
		return fmt.Errorf("--rate must be 0 (as fast as the server takes them) or more, got %d", *rate)
	}
	const maxSimDays = 36500
	// The simulator holds a whole day's events before it hands them out:
	// 20,000 users make some 600,000 a day, and 1 GB of memory.
	const maxSimUsers = 20_000
	if *users > maxSimUsers {
		return fmt.Errorf("--users %d: at most %d (a day of events is held in memory: 20,000 users take about 1 GB)", *users, maxSimUsers)
	}
	cfg := sim.Config{Seed: *seed, Users: *users, Days: *days, Learning: *learning, AttacksPerScenario: *attacks}
	if *learning >= *days {
		return fmt.Errorf("--learning %d must be below --days %d (attacks come after it)", *learning, *days)
	}
	// Events carry times in nanoseconds since 1970 (int64: until 2262).
	if *days > maxSimDays {
		return fmt.Errorf("--days %d: at most %d", *days, maxSimDays)
	}
	if *start != "" {
		t, err := time.Parse("2006-01-02", *start)
		if err != nil {
			return fmt.Errorf("--start %q: want YYYY-MM-DD", *start)
		}
		if t.Year() < 1970 || t.AddDate(0, 0, *days).Year() >= 2200 {
			return fmt.Errorf("--start %s: the simulated days must lie between 1970 and 2200", *start)
		}
		cfg.Start = t
	}
	if *out == "" && *server == "" && !*evaluate {
		*out = "-"
	}
	g := sim.New(cfg)

	var sinks []func(*event.Event) error
	var flushes []func() error
	if *out != "" {
		var w io.Writer = stdout
		if *out != "-" {
			f, err := os.Create(*out)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		bw := bufio.NewWriterSize(w, 1<<20)
		sinks = append(sinks, func(ev *event.Event) error {
			bw.Write(ev.Canonical())
			return bw.WriteByte('\n')
		})
		flushes = append(flushes, bw.Flush)
	}
	if *server != "" {
		key := os.Getenv("ACCESSLEDGER_API_KEY")
		if *keyFile != "" {
			raw, err := os.ReadFile(*keyFile)
			if err != nil {
				return err
			}
			key = strings.TrimSpace(string(raw))
		}
		if key == "" {
			return errors.New("--server needs a submitter key: --key-file FILE or env ACCESSLEDGER_API_KEY")
		}
		p := &poster{ctx: ctx, url: strings.TrimRight(*server, "/") + "/v1/events", key: key, size: *batch, rate: *rate, client: &http.Client{Timeout: 60 * time.Second}}
		sinks = append(sinks, p.add)
		flushes = append(flushes, p.flush)
	}
	sunk := 0
	sink := func(ev *event.Event) error {
		// Interrupted: stop (the evaluation too, which has no context).
		if sunk++; sunk%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		for _, s := range sinks {
			if err := s(ev); err != nil {
				return err
			}
		}
		return nil
	}

	n := 0
	if *evaluate {
		rs, lists, err := loadRuleDirs(*rulesDir, *withDefault || *rulesDir == "", *listsDir)
		if err != nil {
			return err
		}
		e, err := detect.Compile(rs, detect.Config{Lists: lists})
		if err != nil {
			return err
		}
		began := time.Now()
		rep, err := sim.Evaluate(g, e, sink)
		if err != nil {
			return err
		}
		for _, f := range flushes {
			if err := f(); err != nil {
				return err
			}
		}
		printReport(stdout, rep, *seed, *users, *days, time.Since(began))
		n = rep.Events
	} else {
		for evs := g.Day(); evs != nil; evs = g.Day() {
			for _, ev := range evs {
				if err := sink(ev); err != nil {
					return err
				}
				n++
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		for _, f := range flushes {
			if err := f(); err != nil {
				return err
			}
		}
	}
	if *labels != "" {
		ls := g.Labels()
		sim.SortLabels(ls)
		b, err := json.MarshalIndent(ls, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*labels, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "simulate: %d events, %d attacks injected\n", n, len(g.Labels()))
	return nil
}

func printReport(w io.Writer, rep sim.Report, seed uint64, users, days int, took time.Duration) {
	fmt.Fprintf(w, "seed %d, %d users, %d days: %d events (%d benign, %d late), generated and evaluated in %s\n\n", seed, users, days, rep.Events, rep.Benign, rep.Late, took.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRULE\tDETECTED")
	missed := 0
	for _, s := range rep.Scenarios {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\n", s.Scenario, s.Rule, s.Detected, s.Injected)
		missed += s.Injected - s.Detected
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tALERTS\tFALSE\tFALSE PER 100K BENIGN")
	for _, r := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\n", r.Rule, r.Alerts, r.False, r.FalsePer1e5)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nmissed scenarios: %d\n", missed)
}

// poster sends events to a server in batches, retrying on pushback and
// network errors (the events carry ids, so a retry is idempotent).
type poster struct {
	ctx    context.Context
	url    string
	key    string
	size   int
	client *http.Client
	buf    [][]byte
	rate   int       // events per second, 0 for no pacing
	began  time.Time // of the first batch, for pacing
	sent   int
}

func (p *poster) add(ev *event.Event) error {
	p.buf = append(p.buf, ev.Canonical())
	if len(p.buf) >= p.size {
		return p.flush()
	}
	return nil
}

func (p *poster) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	if p.rate > 0 {
		// Pace: batch k goes out at k*size/rate seconds.
		if p.began.IsZero() {
			p.began = time.Now()
		}
		due := p.began.Add(time.Duration(float64(p.sent) / float64(p.rate) * float64(time.Second)))
		if err := sleepCtx(p.ctx, time.Until(due)); err != nil {
			return err
		}
		p.sent += len(p.buf)
	}
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i, b := range p.buf {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(b)
	}
	body.WriteString("]}")
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.url, bytes.NewReader(body.Bytes()))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+p.key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				p.buf = p.buf[:0]
				return nil
			case resp.StatusCode != http.StatusServiceUnavailable || attempt >= 20:
				return fmt.Errorf("POST %s: %s: %s", p.url, resp.Status, msg)
			}
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
				wait = time.Duration(s) * time.Second
			}
			if err := sleepCtx(p.ctx, wait); err != nil {
				return err
			}
			continue
		}
		if p.ctx.Err() != nil || attempt >= 5 {
			return fmt.Errorf("POST %s: %w", p.url, err)
		}
		if err := sleepCtx(p.ctx, time.Duration(attempt+1)*time.Second); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
