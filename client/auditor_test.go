package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/accessledger/accessledger/client"
	"github.com/accessledger/accessledger/ledger"
)

// grow appends n events and waits for a checkpoint covering them.
func (tl *testLog) grow(t *testing.T, first, n int) {
	t.Helper()
	var entries []ledger.Entry
	for i := first; i < first+n; i++ {
		ev := testEvent(i)
		entries = append(entries, ledger.Entry{Data: []byte(`{"kind":"event","received_at":"2026-11-24T10:00:00.000000000Z","body":` + string(ev.Canonical()) + `}`)})
	}
	if _, err := tl.l.Append(bg, entries...); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.l.SignCheckpoint(bg); err != nil {
		t.Fatal(err)
	}
}

func TestAuditorTrustsOnlyGrowth(t *testing.T) {
	signer := newSigner(t)
	tl := newTestLog(t, signer, nil)
	state := filepath.Join(t.TempDir(), "trusted.json")
	cfg := client.AuditorConfig{URL: tl.srv.URL, APIKey: tl.token, VerifierKey: tl.l.VerifierKey(), StateFile: state}
	a, err := client.NewAuditor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tl.grow(t, 0, 10)
	cp, err := a.Update(bg)
	if err != nil || cp.Size != 10 {
		t.Fatalf("Update() = %+v, %v, want size 10", cp, err)
	}
	tl.grow(t, 10, 300)
	if cp, err = a.Update(bg); err != nil || cp.Size != 310 {
		t.Fatalf("Update() = %+v, %v, want size 310", cp, err)
	}
	// The entries are proven in it.
	entry, cp, err := a.Entry(bg, 257)
	if err != nil || cp.Size != 310 || len(entry) == 0 {
		t.Errorf("Entry(257) = %q, %+v, %v", entry, cp, err)
	}
	if _, err := a.VerifyInclusion(bg, 257, append(entry, ' ')); !errors.Is(err, client.ErrNotIncluded) {
		t.Errorf("VerifyInclusion(another entry) = %v, want ErrNotIncluded", err)
	}

	// A new Auditor starts from the saved state.
	b, err := client.NewAuditor(cfg)
	if err != nil || b.Trusted() == nil || b.Trusted().Size != 310 {
		t.Fatalf("NewAuditor(saved state) = %+v, %v, want trusted size 310", b.Trusted(), err)
	}

	// Another log under the same key (a fork): refused.
	fork := newTestLog(t, signer, nil)
	fork.grow(t, 1000, 400)
	cfg.URL, cfg.APIKey = fork.srv.URL, fork.token
	c, err := client.NewAuditor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(bg); !errors.Is(err, client.ErrInconsistent) {
		t.Errorf("Update(fork) = %v, want ErrInconsistent", err)
	}
	if c.Trusted().Size != 310 {
		t.Errorf("Trusted() after a refused fork = %d, want 310", c.Trusted().Size)
	}
	// A log under another key: refused.
	other := newTestLog(t, nil, nil)
	other.grow(t, 0, 5)
	cfg.URL, cfg.APIKey = other.srv.URL, other.token
	d, _ := client.NewAuditor(cfg)
	if _, err := d.Update(bg); !errors.Is(err, client.ErrBadCheckpoint) {
		t.Errorf("Update(other key) = %v, want ErrBadCheckpoint", err)
	}
	ctx, cancel := context.WithTimeout(bg, time.Second)
	defer cancel()
	if _, err := a.Update(ctx); err != nil {
		t.Errorf("Update(again) = %v", err)
	}
}
