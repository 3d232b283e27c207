package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/respond"
)

// respondDir is the responders' Badger directory in the data directory.
const respondDir = "respond"

// respondCreatedFile records that the responders' storage was made in
// the data directory: from then on its loss is an error, not a first
// start, since a new one would replay the log and notify every responder
// of every past alert again.
const respondCreatedFile = "respond.created"

// DecisionSettings configures IP decisions for bouncers (the serve YAML's
// decisions: section).
type DecisionSettings struct {
	// Enabled serves GET /v1/decisions/stream to bouncers and makes
	// decisions from alerts whose rule says to ban.
	Enabled bool `yaml:"enabled"`
	// DefaultDuration is how long a ban lasts when the rule gives no
	// duration.
	DefaultDuration time.Duration `yaml:"default_duration"`
	// Allow lists addresses and networks (CIDR) never banned. Default:
	// loopback.
	Allow []string `yaml:"allow"`
	// History is how long deleted and expired decisions are remembered
	// for bouncers' delta pulls.
	History time.Duration `yaml:"history"`
}

// decisionsConfig turns the settings into the store's configuration; nil
// when decisions are off.
func (d DecisionSettings) decisionsConfig() (*respond.DecisionsConfig, error) {
	if !d.Enabled {
		return nil, nil
	}
	cfg := respond.DefaultDecisionsConfig()
	if d.DefaultDuration > 0 {
		cfg.DefaultDuration = d.DefaultDuration
	}
	if d.History > 0 {
		cfg.History = d.History
	}
	if d.Allow != nil {
		cfg.Allow = []netip.Prefix{} // an empty list allows banning anything
		for _, s := range d.Allow {
			p, err := parsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("decisions.allow: %w", err)
			}
			cfg.Allow = append(cfg.Allow, p)
		}
	}
	return &cfg, nil
}

// parsePrefix parses a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// checkRespondConfig checks the responders' configuration without
// writing anything.
func checkRespondConfig(cfg Config) error {
	if !cfg.Respond {
		// Decisions are on by default; they go with the responders.
		if len(cfg.Responders) > 0 {
			return errors.New("respond is false, but responders are configured: remove them, or set respond: true")
		}
		return nil
	}
	seen := map[string]bool{}
	for i, rc := range cfg.Responders {
		if rc.Name == "" {
			return fmt.Errorf("responders[%d]: a name is required", i)
		}
		if seen[rc.Name] {
			return fmt.Errorf("responders: two are named %q", rc.Name)
		}
		seen[rc.Name] = true
		if err := respond.ValidateResponder(rc); err != nil {
			return err
		}
	}
	d := cfg.Delivery
	if d.MaxAttempts < 0 || d.Timeout < 0 {
		return errors.New("delivery: max_attempts and timeout must not be negative")
	}
	if d.Timeout > 0 && d.Timeout < respond.MinTimeout {
		return fmt.Errorf("delivery.timeout %s is too short for a request or a command: at least %s (0 or absent: the default)", d.Timeout, respond.MinTimeout)
	}
	for _, s := range d.Schedule {
		if s < 0 {
			return errors.New("delivery.schedule: delays must not be negative")
		}
	}
	// 0 would dead-letter every message unsent, or keep no dead letter;
	// the bounds are on by default.
	def := respond.DefaultDelivery()
	for _, b := range []struct {
		field    string
		n, deflt int
	}{{"max_queued", d.MaxQueued, def.MaxQueued}, {"max_dead_letters", d.MaxDeadLetters, def.MaxDeadLetters}} {
		if b.n < 1 || b.n > respond.MaxBound {
			return fmt.Errorf("delivery.%s %d: want 1 to %d messages per responder (absent: the default, %d)",
				b.field, b.n, respond.MaxBound, b.deflt)
		}
	}
	for name, spec := range map[string]string{"self_audit_schedule": cfg.SelfAuditSchedule, "digest_schedule": cfg.DigestSchedule} {
		if spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(spec); err != nil {
			return fmt.Errorf("%s %q: %w", name, spec, err)
		}
	}
	_, err := cfg.Decisions.decisionsConfig()
	return err
}

// runningRespond is the responders' service while the server runs.
type runningRespond struct {
	s      *respond.Service
	cancel context.CancelFunc
	done   chan error
}

// startRespond opens the responders' service and runs it; nil when
// respond is off.
func startRespond(cfg Config, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) (*runningRespond, error) {
	if !cfg.Respond {
		return nil, nil
	}
	dc, err := cfg.Decisions.decisionsConfig()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Data, respondDir)
	marker := filepath.Join(cfg.Data, respondCreatedFile)
	if _, err := os.Stat(marker); err == nil && !hasEntries(dir) {
		return nil, fmt.Errorf("%s records that the responders' storage was made here, but %s is missing or empty: it was lost. "+
			"Refusing to start new responders' storage, which would notify every responder of every past alert again and lose the alerts' statuses. "+
			"Restore %s from a backup (with the log's and the detector's); to start the responders afresh on purpose, remove %s",
			marker, dir, dir, marker)
	}
	s, err := respond.Open(context.Background(), respond.Config{
		Log: l, Dir: dir,
		Responders: cfg.Responders, Delivery: cfg.Delivery, Decisions: dc,
		Logger: log.With("component", "respond"), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
		record := fmt.Sprintf("responders' storage made %s\n", time.Now().UTC().Format(time.RFC3339))
		if err := ledger.WriteFileAtomic(marker, []byte(record), 0o644); err != nil {
			s.Close()
			return nil, fmt.Errorf("recording that the responders' storage exists: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningRespond{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := s.Run(ctx)
		if err != nil {
			log.Error("responders stopped; they resume from their saved cursor after a restart", "err", err)
		}
		r.done <- err
	}()
	log.Info("responding", "responders", len(cfg.Responders), "decisions", dc != nil, "cursor", s.Cursor())
	return r, nil
}

// service returns the service, nil when respond is off.
func (r *runningRespond) service() *respond.Service {
	if r == nil {
		return nil
	}
	return r.s
}

// responses returns what the API serves the alert feed, the lifecycle
// and incidents from: nil when respond is off (a nil interface, not a nil
// pointer).
func (r *runningRespond) responses() api.Responses {
	if r == nil {
		return nil
	}
	return r.s
}

// decisions returns the decision store the API serves bouncers from: nil
// when decisions are off.
func (r *runningRespond) decisions() api.DecisionService {
	if r == nil || r.s.Decisions() == nil {
		return nil
	}
	return r.s.Decisions()
}

// stop ends the service (the log must still be open: it records what it
// delivered) and closes its database.
func (r *runningRespond) stop() error {
	if r == nil {
		return nil
	}
	r.cancel()
	err := <-r.done
	return errors.Join(err, r.s.Close())
}

// addDuties schedules the self-audit and the daily digest.
func addDuties(jobs *cron.Cron, cfg Config, l *ledger.Ledger, rs *respond.Service, log *slog.Logger, ctx context.Context) error {
	if cfg.SelfAuditSchedule != "" {
		if _, err := jobs.AddFunc(cfg.SelfAuditSchedule, func() { selfAudit(ctx, l, log) }); err != nil {
			return fmt.Errorf("self_audit_schedule %q: %w", cfg.SelfAuditSchedule, err)
		}
	}
	if cfg.DigestSchedule != "" && rs != nil {
		if _, err := jobs.AddFunc(cfg.DigestSchedule, func() {
			// The digest of the day that just ended (UTC).
			day := time.Now().UTC().Add(-12 * time.Hour)
			rec, err := rs.Digest(ctx, day, "")
			if err != nil {
				if ctx.Err() == nil {
					log.Error("daily digest failed", "err", err)
				}
				return
			}
			log.Info("daily digest recorded", "index", rec.Index, "day", day.Format(time.DateOnly),
				"events", rec.Response.Digest.Events, "alerts", rec.Response.Digest.Alerts, "open_alerts", rec.Response.Digest.OpenAlerts)
		}); err != nil {
			return fmt.Errorf("digest_schedule %q: %w", cfg.DigestSchedule, err)
		}
	}
	return nil
}

// auditedLog is what the self-audit needs of the log (*ledger.Ledger).
type auditedLog interface {
	SelfAudit(ctx context.Context) (ledger.SelfAuditReport, error)
	Append(ctx context.Context, entries ...ledger.Entry) ([]ledger.Result, error)
}

// selfAudit recomputes the root of the latest checkpoint from every tile
// and entry bundle. A mismatch marks the server unhealthy (the ledger does)
// and is recorded in the log as a critical alert.
func selfAudit(ctx context.Context, l auditedLog, log *slog.Logger) {
	rep, err := l.SelfAudit(ctx)
	switch {
	case err == nil:
		log.Info("self-audit passed", "report", rep.String())
		return
	case ctx.Err() != nil:
		return
	case !errors.Is(err, ledger.ErrIntegrity):
		log.Error("self-audit could not run", "err", err)
		return
	}
	log.Error("SELF-AUDIT FAILED: the stored log does not match its signed checkpoint; the server reports unready", "err", err)
	now := time.Now().UTC()
	a := &event.Alert{
		DedupKey: "accessledger-integrity|" + now.Format(time.DateOnly),
		Time:     now,
		Rule: event.AlertRule{ID: "accessledger-integrity", Title: "The log's storage does not match its signed checkpoint",
			Level: event.LevelCritical, Tags: []string{"attack.impact", "attack.t1565.001"}},
		Window:   event.Window{Start: now, End: now},
		Evidence: []uint64{},
		Summary:  truncate(err.Error(), event.MaxAlertText),
	}
	leaf, lerr := event.EncodeAlertLeaf(a, now)
	if lerr == nil {
		key := []byte("alert\x00" + a.DedupKey)
		_, lerr = l.Append(ctx, ledger.Entry{Data: leaf, DedupKey: key, Fingerprint: sha256.Sum256(key)})
	}
	if lerr != nil {
		log.Error("recording the self-audit failure as an alert failed", "err", lerr)
	}
}

// truncate cuts s to at most n bytes, dropping a rune cut in half.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// hasEntries reports whether dir exists and holds at least one file.
func hasEntries(dir string) bool {
	es, err := os.ReadDir(dir)
	return err == nil && len(es) > 0
}
