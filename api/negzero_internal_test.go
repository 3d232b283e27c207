package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

// TestResubmitNegativeZeroStoredBefore: an event with a coordinate of -0
// stored by a version whose canonical form kept -0 (its dedup record
// holds that encoding's fingerprint) is a duplicate of the same event
// submitted again now that -0 is written 0, not a 409 "id reused with
// different content" (found by review).
func TestResubmitNegativeZeroStoredBefore(t *testing.T) {
	raw := []byte(`{"id":"evt-1","time":"2026-11-24T10:00:00Z","service":"sso","actor":{"id":"alice"},"source":{"ip":"192.0.2.10","geo":{"lat":51.5,"lon":-0.0}},"action":"login","category":"authentication","outcome":"success"}`)
	s := &Server{cfg: Config{Clock: time.Now, MaxFuture: time.Hour}}
	entries, _, bad := s.prepare([][]byte{raw}, "")
	if len(bad) != 0 {
		t.Fatalf("prepare: %v", bad)
	}
	e := entries[0]
	if e.LegacyFingerprint == nil {
		t.Fatal("no legacy fingerprint for an event with lon -0")
	}
	body := e.Data[bytes.Index(e.Data, []byte(`"body":`))+len(`"body":`) : len(e.Data)-1]
	if want := sha256.Sum256(bytes.Replace(body, []byte(`"lon":0}`), []byte(`"lon":-0}`), 1)); *e.LegacyFingerprint != want {
		t.Fatalf("the legacy fingerprint is not that of the body with -0 (%s)", body)
	}
	l := ledgertest.New(t, ledger.Config{})
	// As the earlier version stored it: its fingerprint was the legacy one.
	old := ledger.Entry{Data: e.Data, DedupKey: e.DedupKey, Fingerprint: *e.LegacyFingerprint}
	first, err := l.Append(context.Background(), old)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.Append(context.Background(), e)
	if err != nil || !res[0].Duplicate || res[0].Index != first[0].Index {
		t.Fatalf("resubmitting the event = %+v, %v; want a duplicate of entry %d", res, err, first[0].Index)
	}
}
