package event

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testAdmin() *Admin {
	t0 := time.Date(2026, 3, 1, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	return &Admin{
		Action:             AdminKeyRotated,
		Time:               t0,
		By:                 "ops",
		Key:                "billing-svc",
		Roles:              []string{"submitter", "auditor"},
		ExpiresAt:          t0.Add(90 * 24 * time.Hour),
		PreviousValidUntil: t0.Add(time.Hour),
	}
}

func TestAdminCanonical(t *testing.T) {
	a := testAdmin()
	want := `{"action":"key_rotated","time":"2026-03-01T08:30:00.000000000Z","by":"ops","key":"billing-svc",` +
		`"roles":["submitter","auditor"],"expires_at":"2026-05-30T08:30:00.000000000Z",` +
		`"previous_valid_until":"2026-03-01T09:30:00.000000000Z"}`
	if got := string(a.Canonical()); got != want {
		t.Fatalf("Canonical() =\n%s\nwant\n%s", got, want)
	}
	b, err := ParseAdmin([]byte(want))
	if err != nil {
		t.Fatalf("ParseAdmin(canonical) = %v", err)
	}
	if got := b.Canonical(); !bytes.Equal(got, []byte(want)) {
		t.Errorf("ParseAdmin then Canonical() = %s, want the same bytes", got)
	}

	// Optional fields are omitted when empty.
	created := &Admin{Action: AdminKeyCreated, Time: a.Time, By: AdminByCLI, Key: "k", Roles: []string{"admin"}}
	wantCreated := `{"action":"key_created","time":"2026-03-01T08:30:00.000000000Z","by":"cli","key":"k","roles":["admin"]}`
	if got := string(created.Canonical()); got != wantCreated {
		t.Errorf("Canonical() = %s, want %s", got, wantCreated)
	}

	leaf, err := EncodeAdminLeaf(a, time.Date(2026, 3, 1, 8, 30, 1, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(leaf), `{"kind":"admin","received_at":"2026-03-01T08:30:01.000000000Z","body":{"action":"key_rotated"`) {
		t.Errorf("EncodeAdminLeaf() = %s", leaf)
	}
	if k := LeafKind(leaf); k != KindAdmin {
		t.Errorf("LeafKind(admin leaf) = %q, want %q", k, KindAdmin)
	}
	l, c, err := DecodeAdminLeaf(leaf)
	if err != nil || l.Kind != KindAdmin || c.Key != a.Key || !c.PreviousValidUntil.Equal(a.PreviousValidUntil) {
		t.Errorf("DecodeAdminLeaf() = %v, %+v, %v", l, c, err)
	}

	// A change says what changed, and the new rate limit; never the
	// secret.
	changed := &Admin{Action: AdminKeyChanged, Time: a.Time, By: AdminByCLI, Key: "k", Roles: []string{"submitter", "admin"},
		Changed: []string{AdminChangedRoles, AdminChangedRateLimit, AdminChangedSecret}, RateLimit: &AdminRateLimit{PerSecond: 2.5, Burst: 10}}
	wantChanged := `{"action":"key_changed","time":"2026-03-01T08:30:00.000000000Z","by":"cli","key":"k","roles":["submitter","admin"],` +
		`"changed":["roles","rate_limit","secret"],"rate_limit":{"per_second":2.5,"burst":10}}`
	if got := string(changed.Canonical()); got != wantChanged {
		t.Errorf("Canonical() = %s, want %s", got, wantChanged)
	}
	if c, err := ParseAdmin([]byte(wantChanged)); err != nil || string(c.Canonical()) != wantChanged {
		t.Errorf("ParseAdmin(%s) = %v; Canonical() = %s", wantChanged, err, c.Canonical())
	}

	evLeaf, _ := EncodeLeaf(KindEvent, time.Now(), []byte(`{}`))
	if _, _, err := DecodeAdminLeaf(evLeaf); err == nil {
		t.Error("DecodeAdminLeaf(event leaf) = nil error")
	}
}

func TestAdminValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(a *Admin)
		field string
	}{
		{"unknown action", func(a *Admin) { a.Action = "key_deleted" }, "action"},
		{"no time", func(a *Admin) { a.Time = time.Time{} }, "time"},
		{"no by", func(a *Admin) { a.By = "" }, "by"},
		{"by too long", func(a *Admin) { a.By = strings.Repeat("b", MaxActorIDLen+1) }, "by"},
		{"no key", func(a *Admin) { a.Key = "" }, "key"},
		{"no roles", func(a *Admin) { a.Roles = nil }, "roles"},
		{"bad role", func(a *Admin) { a.Roles = []string{"Admin"} }, "roles"},
		{"grace on a creation", func(a *Admin) { a.Action = AdminKeyCreated }, "previous_valid_until"},
		{"invalid UTF-8", func(a *Admin) { a.Key = "k\xff" }, "key"},
		{"changed on a rotation", func(a *Admin) { a.Changed = []string{AdminChangedRoles} }, "changed"},
		{"rate limit on a rotation", func(a *Admin) { a.RateLimit = &AdminRateLimit{PerSecond: 1} }, "rate_limit"},
		{"a change of nothing", func(a *Admin) { a.Action, a.PreviousValidUntil = AdminKeyChanged, time.Time{} }, "changed"},
		{"an unknown change", func(a *Admin) {
			a.Action, a.PreviousValidUntil, a.Changed = AdminKeyChanged, time.Time{}, []string{"sha256"}
		}, "changed"},
		{"changes out of order", func(a *Admin) {
			a.Action, a.PreviousValidUntil, a.Changed = AdminKeyChanged, time.Time{}, []string{AdminChangedSecret, AdminChangedRoles}
		}, "changed"},
		{"a change twice", func(a *Admin) {
			a.Action, a.PreviousValidUntil, a.Changed = AdminKeyChanged, time.Time{}, []string{AdminChangedRoles, AdminChangedRoles}
		}, "changed"},
		{"a negative rate", func(a *Admin) {
			a.Action, a.PreviousValidUntil, a.Changed = AdminKeyChanged, time.Time{}, []string{AdminChangedRateLimit}
			a.RateLimit = &AdminRateLimit{PerSecond: -1}
		}, "rate_limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAdmin()
			tt.edit(a)
			err := a.Validate()
			v, ok := err.(*ValidationError)
			if !ok || v.Fields[0].Field != tt.field {
				t.Errorf("Validate() = %v, want an error on %s", err, tt.field)
			}
		})
	}
	for _, body := range []string{
		`{"action":"key_created","time":"2026-03-01T08:30:00Z","by":"cli","key":"k","roles":["admin"],"secret":"x"}`,
		`{"action":"key_created","time":"2026-03-01T08:30:00Z","by":"cli","key":"k","roles":"admin"}`,
		`{"action":"key_created","time":"2026-03-01T08:30:00Z","by":"cli","key":"k","key":"j","roles":["admin"]}`,
	} {
		if _, err := ParseAdmin([]byte(body)); err == nil {
			t.Errorf("ParseAdmin(%s) = nil error, want an error", body)
		}
	}
}
