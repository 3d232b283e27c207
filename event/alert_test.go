package event

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testAlert() *Alert {
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	return &Alert{
		DedupKey: "al-bruteforce-fast:0123456789abcdef0123456789abcdef",
		Time:     t0.Add(30 * time.Second),
		Rule:     AlertRule{ID: "al-bruteforce-fast", Title: "Fast brute force", Level: LevelHigh, Tags: []string{"attack.t1110.001"}},
		Group:    []GroupValue{{Field: "source.ip", Value: "45.83.64.1"}},
		Window:   Window{Start: t0, End: t0.Add(30 * time.Second)},
		Evidence: []uint64{3, 7, 9}, EvidenceCount: 3,
		Summary:  "6 events \"quoted\"",
		Response: []ResponseAction{{Action: "ban", Target: "source.ip", Value: "45.83.64.1", DurationSeconds: 14400}},
	}
}

func TestAlertCanonical(t *testing.T) {
	a := testAlert()
	want := `{"dedup_key":"al-bruteforce-fast:0123456789abcdef0123456789abcdef","time":"2026-01-05T10:00:30.000000000Z",` +
		`"rule":{"id":"al-bruteforce-fast","title":"Fast brute force","level":"high","tags":["attack.t1110.001"]},` +
		`"group":[{"field":"source.ip","value":"45.83.64.1"}],` +
		`"window":{"start":"2026-01-05T10:00:00.000000000Z","end":"2026-01-05T10:00:30.000000000Z"},` +
		`"evidence":[3,7,9],"evidence_count":3,"summary":"6 events \"quoted\"",` +
		`"response":[{"action":"ban","target":"source.ip","value":"45.83.64.1","duration_seconds":14400}]}`
	if got := string(a.Canonical()); got != want {
		t.Fatalf("Canonical() =\n%s\nwant\n%s", got, want)
	}
	b, err := ParseAlert([]byte(want))
	if err != nil {
		t.Fatalf("ParseAlert(canonical) = %v", err)
	}
	if got := b.Canonical(); !bytes.Equal(got, []byte(want)) {
		t.Errorf("ParseAlert then Canonical() = %s, want the same bytes", got)
	}
	leaf, err := EncodeAlertLeaf(a, time.Date(2026, 1, 5, 10, 0, 31, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(leaf), `{"kind":"alert","received_at":"2026-01-05T10:00:31.000000000Z","body":{"dedup_key"`) {
		t.Errorf("EncodeAlertLeaf() = %s", leaf)
	}
	l, c, err := DecodeAlertLeaf(leaf)
	if err != nil || l.Kind != KindAlert || c.DedupKey != a.DedupKey {
		t.Errorf("DecodeAlertLeaf() = %v, %v, %v", l, c, err)
	}
	evLeaf, _ := EncodeLeaf(KindEvent, time.Now(), []byte(`{}`))
	if _, _, err := DecodeAlertLeaf(evLeaf); err == nil {
		t.Error("DecodeAlertLeaf(event leaf) = nil error")
	}
}

func TestAlertValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(a *Alert)
		field string
	}{
		{"no dedup key", func(a *Alert) { a.DedupKey = "" }, "dedup_key"},
		{"no time", func(a *Alert) { a.Time = time.Time{} }, "time"},
		{"no rule id", func(a *Alert) { a.Rule.ID = "" }, "rule.id"},
		{"bad level", func(a *Alert) { a.Rule.Level = "severe" }, "rule.level"},
		{"window backwards", func(a *Alert) { a.Window.End = a.Window.Start.Add(-time.Second) }, "window"},
		{"evidence unsorted", func(a *Alert) { a.Evidence = []uint64{3, 2} }, "evidence"},
		{"count below evidence", func(a *Alert) { a.EvidenceCount = 1 }, "evidence_count"},
		{"too much evidence", func(a *Alert) { a.Evidence = make([]uint64, MaxEvidence+1) }, "evidence"},
		{"response without action", func(a *Alert) { a.Response = []ResponseAction{{}} }, "response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAlert()
			tt.edit(a)
			err := a.Validate()
			v, ok := err.(*ValidationError)
			if !ok || v.Fields[0].Field != tt.field {
				t.Errorf("Validate() = %v, want an error on %s", err, tt.field)
			}
		})
	}
	if _, err := ParseAlert([]byte(`{"dedup_key":"k","unknown":1}`)); err == nil {
		t.Error("ParseAlert(unknown field) = nil error")
	}
}
