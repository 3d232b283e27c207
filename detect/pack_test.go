package detect

import (
	"testing"
)

// TestDefaultPack loads the default pack and runs every inline test.
func TestDefaultPack(t *testing.T) {
	rs, err := LoadRules(DefaultRules(), ".")
	if err != nil {
		t.Fatalf("LoadRules(default pack) = %v", err)
	}
	if _, err := Compile(rs, Config{Lists: DefaultLists()}); err != nil {
		t.Fatalf("Compile(default pack) = %v", err)
	}
	for _, r := range rs.Rules {
		if len(r.Tests) == 0 {
			t.Errorf("rule %s (%s:%d) has no inline test", r.ID, r.File, r.Line)
		}
		if r.Level == "informational" {
			continue
		}
		pos, neg := false, false
		for _, tt := range r.Tests {
			pos = pos || tt.Alerts > 0
			neg = neg || tt.Alerts == 0
		}
		if !pos || !neg {
			t.Errorf("rule %s lacks a positive or a negative test", r.ID)
		}
	}
	for _, res := range rs.RunTests(Config{Lists: DefaultLists()}) {
		if !res.Passed() {
			t.Errorf("%s:%d: rule %s, test %q: %d alerts, want %d (%v)", res.Rule.File, res.Line, res.Rule.ID, res.Test, res.Got, res.Want, res.Err)
		}
	}
}
