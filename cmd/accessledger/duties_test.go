package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

// corruptLog is a real ledger whose self-audit reports a mismatch, as
// ledger's own tests produce by corrupting a tile (ledger/selfaudit_test.go).
type corruptLog struct{ *ledger.Ledger }

func (corruptLog) SelfAudit(context.Context) (ledger.SelfAuditReport, error) {
	return ledger.SelfAuditReport{}, fmt.Errorf("self-audit: tile 0/3 hash 7 differs: %w", ledger.ErrIntegrity)
}

func TestSelfAuditDuty(t *testing.T) {
	ctx := t.Context()
	l := ledgertest.New(t, ledger.Config{Origin: "duty.test/log", CheckpointInterval: 20 * time.Millisecond})
	leaf, _ := event.EncodeLeaf(event.KindEvent, time.Now(), []byte(`{"service":"x"}`))
	if _, err := l.Append(ctx, ledger.Entry{Data: leaf}); err != nil {
		t.Fatal(err)
	}
	for l.Latest().Size < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	// A clean log: a line saying so, nothing appended.
	selfAudit(ctx, l, log)
	if size, _ := l.Size(); size != 1 || !strings.Contains(logs.String(), "self-audit passed") {
		t.Fatalf("clean self-audit: log size %d, log %q", size, logs.String())
	}
	// A mismatch: a critical alert in the log, once a day.
	selfAudit(ctx, corruptLog{l}, log)
	selfAudit(ctx, corruptLog{l}, log)
	if size, _ := l.Size(); size != 2 {
		t.Fatalf("after two failed self-audits the log holds %d entries, want 2 (one alert)", size)
	}
	data, _, err := l.Entry(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, a, err := event.DecodeAlertLeaf(data)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rule.ID != "accessledger-integrity" || a.Rule.Level != event.LevelCritical || !strings.Contains(a.Summary, "tile 0/3") {
		t.Errorf("integrity alert %+v", a)
	}
	if !strings.Contains(logs.String(), "SELF-AUDIT FAILED") {
		t.Errorf("no error line for the failure: %q", logs.String())
	}
}
