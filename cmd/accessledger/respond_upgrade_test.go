package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/respond"
)

// TestResponseRecordedBeforeOmitzero: versions before responses omitted
// zero numbers wrote "attempts":0,"status":0 in every response leaf. A
// decision that such a version appended, and that is recorded again after
// the upgrade (a crash between the append and the removal from the
// queue), must be found in the log as the same response: not appended a
// second time with the new bytes, nor refused as another response under
// the same key (which would hold back every record queued after it). The
// log's dedup record is keyed, and fingerprinted, by the response's dedup
// key, never by the leaf's bytes; the follower reads the old leaf too.
func TestResponseRecordedBeforeOmitzero(t *testing.T) {
	ctx := context.Background()
	l := ledgertest.New(t, ledger.Config{Origin: "upgrade.test/log", CheckpointInterval: 50 * time.Millisecond})
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	decision := func(id uint64) *event.Response {
		return &event.Response{Action: event.ActionDecisionAdded, Time: at, By: "accessledger", DedupKey: "al-bruteforce-fast:k",
			Decision: &event.Decision{ID: id, Origin: "accessledger", Type: "ban", Scope: "Ip", Value: "45.83.64.1", Scenario: "al-bruteforce-fast", Until: at.Add(4 * time.Hour)}}
	}
	// The leaf and the dedup key the earlier version appended for
	// decision 1, byte for byte.
	oldBody := `{"action":"decision_added","time":"2026-11-29T10:00:00Z","dedup_key":"al-bruteforce-fast:k","by":"accessledger","attempts":0,"status":0,` +
		`"decision":{"id":1,"origin":"accessledger","type":"ban","scope":"Ip","value":"45.83.64.1","scenario":"al-bruteforce-fast","until":"2026-11-29T14:00:00Z"}}`
	if strings.Contains(string(decision(1).Canonical()), `"attempts"`) {
		t.Fatalf("Canonical() = %s, still with attempts", decision(1).Canonical())
	}
	oldLeaf, err := event.EncodeLeaf(event.KindResponse, at, []byte(oldBody))
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("resp\x00decision_added\x001")
	if _, err := l.Append(ctx, ledger.Entry{Data: oldLeaf, DedupKey: key, Fingerprint: sha256.Sum256(key)}); err != nil {
		t.Fatal(err)
	}

	s, err := respond.Open(ctx, respond.Config{Log: l, Dir: t.TempDir(), BadgerOptions: ledgertest.SmallBadger})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	}()
	// Decision 1 again, then a new one: the recorder appends the queue in
	// order, and a conflict on the first would hold the second back.
	if err := s.Record(ctx, decision(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Record(ctx, decision(2)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		size, _ := l.Size()
		st := s.Status()
		if size >= 2 && st.Cursor == size {
			break
		}
		if time.Now().After(deadline) || !st.Running {
			t.Fatalf("after 20s: log size %d, respond %+v; want decision 2 appended and followed", size, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a second copy of decision 1 would come with decision 2
	size, _ := l.Size()
	var got []string
	for i := range size {
		data, _, err := l.Entry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		_, r, err := event.DecodeResponseLeaf(data)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		got = append(got, fmt.Sprint(r.Decision.ID))
	}
	if strings.Join(got, ",") != "1,2" {
		t.Errorf("the log holds decisions %v, want 1 (as the earlier version wrote it) then 2", got)
	}
	if data, _, _ := l.Entry(ctx, 0); string(data) != string(oldLeaf) {
		t.Errorf("entry 0 = %s, want the earlier version's leaf", data)
	}
	if data, _, _ := l.Entry(ctx, 1); strings.Contains(string(data), `"attempts"`) || strings.Contains(string(data), `"status"`) {
		t.Errorf("entry 1 = %s, want no attempts or status", data)
	}
}
