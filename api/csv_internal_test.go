package api

import (
	"bytes"
	"encoding/csv"
	"testing"
)

// TestCSVCell: the cells a spreadsheet opens as formulas (OWASP: =, +,
// -, @, tab, carriage return first) are prefixed with a single quote;
// others are left as they are.
func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\t=1": "'\t=1", "\r=1": "'\r=1",
		"": "", "alice": "alice", "a=b": "a=b", " =1": " =1", "'=1": "'=1", "2026-01-02T15:04:05Z": "2026-01-02T15:04:05Z",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCSVEncoderNeutralisesOldLeaves: the log refuses control characters
// in text now, but a leaf written before may begin a cell with a tab or
// a carriage return; the encoder neutralises those too, unless raw.
func TestCSVEncoderNeutralisesOldLeaves(t *testing.T) {
	leaf := []byte(`{"kind":"event","received_at":"2026-01-02T15:04:05Z","body":{"time":"2026-01-02T15:04:05Z","service":"s",` +
		`"actor":{"id":"\t=1+1","type":"user"},"source":{"ip":"192.0.2.1"},"action":"login","category":"authentication","outcome":"failure","reason":"\r@SUM(1)"}}`)
	for _, raw := range []bool{false, true} {
		var b bytes.Buffer
		e := newCSVEncoder(&b)
		e.raw = raw
		if err := e.encode(7, leaf); err != nil {
			t.Fatal(err)
		}
		if err := e.flush(); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&b).ReadAll()
		if err != nil || len(rows) != 2 {
			t.Fatalf("raw=%v: %d rows, %v", raw, len(rows), err)
		}
		actor, reason := rows[1][7], rows[1][18]
		wantActor, wantReason := "'\t=1+1", "'\r@SUM(1)"
		if raw {
			wantActor, wantReason = "\t=1+1", "\r@SUM(1)"
		}
		if actor != wantActor || reason != wantReason || rows[1][0] != "7" || rows[1][2] != "event" {
			t.Errorf("raw=%v: row %q, want actor_id %q and reason %q", raw, rows[1], wantActor, wantReason)
		}
	}
}
