package api_test

import (
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
	evt "github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// editKey changes the key named name in kf as an edit by hand does: the
// file rewritten, nothing else told.
func editKey(t testing.TB, kf *api.KeyFile, name string, change func(k *api.APIKey)) {
	t.Helper()
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(keys, func(k api.APIKey) bool { return k.Name == name })
	if i < 0 {
		t.Fatalf("no key %q in %s", name, kf.Path())
	}
	change(&keys[i])
	if err := kf.Write(keys); err != nil {
		t.Fatal(err)
	}
}

// waitChanges waits until the log holds n key_changed leaves of key and
// returns them.
func waitChanges(t testing.TB, ts *testServer, key string, n int, secrets ...string) []*evt.Admin {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := findAdmin(adminLeaves(t, ts.l, secrets...), evt.AdminKeyChanged, key)
		if len(got) >= n {
			if len(got) > n {
				t.Fatalf("key_changed leaves of %s = %+v, want %d", key, got, n)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("key_changed leaves of %s = %+v after 5s, want %d", key, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandEditsAreRecorded: an edit of the keys file by hand that gave a
// key the admin role, or a secret of the editor's choosing, took effect
// live and was never recorded in the log, whose admin leaves recorded
// only creations, rotations and revocations. Each such change is now a
// key_changed leaf saying what changed (never the secret), once, and
// again if it is undone and made again.
func TestHandEditsAreRecorded(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf), withAPI(func(c *api.Config) { c.KeyPollInterval = 20 * time.Millisecond }))
	ts.run(t)
	svc := ts.createKey(t, map[string]any{"name": "svc", "roles": []string{"submitter"}})
	adminOf := func(token string) int { return ts.adminCall(t, "GET", "/v1/admin/keys", token, nil).status }

	// A role added by hand: the key is an admin at once, and the log
	// says so.
	editKey(t, kf, "svc", func(k *api.APIKey) { k.Roles = append(k.Roles, api.RoleAdmin) })
	waitFor(t, "svc to become an admin", func() bool { return adminOf(svc.Secret) == http.StatusOK })
	got := waitChanges(t, ts, "svc", 1, svc.Secret)
	if a := got[0]; !slices.Equal(a.Changed, []string{evt.AdminChangedRoles}) || !slices.Equal(a.Roles, []string{"submitter", "admin"}) || a.By != evt.AdminByCLI {
		t.Errorf("key_changed leaf = %+v, want roles changed to submitter, admin, by cli", a)
	}

	// A secret of the editor's choosing: recorded as changed, never
	// shown.
	const chosen = "al_chosen-by-hand"
	editKey(t, kf, "svc", func(k *api.APIKey) { k.SHA256 = api.HashToken(chosen) })
	waitFor(t, "the chosen secret to work", func() bool { return adminOf(chosen) == http.StatusOK })
	got = waitChanges(t, ts, "svc", 2, svc.Secret, chosen)
	if a := got[1]; !slices.Equal(a.Changed, []string{evt.AdminChangedSecret}) {
		t.Errorf("key_changed leaf = %+v, want the secret changed", a)
	}

	// Expiry and rate limit, in one edit: one leaf, with the new ones.
	expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	editKey(t, kf, "svc", func(k *api.APIKey) {
		k.ExpiresAt, k.RateLimit = expires, &api.RateLimit{PerSecond: 50, Burst: 100}
	})
	got = waitChanges(t, ts, "svc", 3, chosen)
	if a := got[2]; !slices.Equal(a.Changed, []string{evt.AdminChangedExpiry, evt.AdminChangedRateLimit}) ||
		!a.ExpiresAt.Equal(expires) || a.RateLimit == nil || *a.RateLimit != (evt.AdminRateLimit{PerSecond: 50, Burst: 100}) {
		t.Errorf("key_changed leaf = %+v (rate limit %+v), want expiry %s and rate limit 50/100", a, a.RateLimit, expires)
	}

	// Undone, then made again: each is recorded.
	editKey(t, kf, "svc", func(k *api.APIKey) { k.Roles = []api.Role{api.RoleSubmitter} })
	waitChanges(t, ts, "svc", 4, chosen)
	editKey(t, kf, "svc", func(k *api.APIKey) { k.Roles = []api.Role{api.RoleSubmitter, api.RoleAdmin} })
	waitChanges(t, ts, "svc", 5, chosen)

	// A revocation undone by hand.
	gone := ts.createKey(t, map[string]any{"name": "gone", "roles": []string{"auditor"}})
	decodeKeyAnswer(t, "revoke", ts.adminCall(t, "POST", "/v1/admin/keys/gone/revoke", "", nil), http.StatusOK)
	editKey(t, kf, "gone", func(k *api.APIKey) { k.RevokedAt, k.RevokedBy = time.Time{}, "" })
	waitStatus(t, ts, gone.Secret, http.StatusOK) // accepted again
	if got := waitChanges(t, ts, "gone", 1, gone.Secret); !slices.Equal(got[0].Changed, []string{evt.AdminChangedRevocation}) {
		t.Errorf("key_changed leaf = %+v, want the revocation undone", got[0])
	}

	// What other leaves record is not a change: a rotation (its new
	// secret and expiry), nor a role order.
	decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", map[string]any{"expires_in": "30d"}), http.StatusOK)
	editKey(t, kf, "svc", func(k *api.APIKey) { k.Roles = []api.Role{api.RoleAdmin, api.RoleSubmitter} })
	time.Sleep(200 * time.Millisecond)
	before := size(ts.l)
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatal(err)
	}
	if got := size(ts.l); got != before {
		t.Errorf("Size() after ReloadKeys = %d, want %d (nothing new)", got, before)
	}
	waitChanges(t, ts, "svc", 5, chosen)
}

// TestKeyChangesWhileStoppedAreRecorded: a change made by hand while the
// server was stopped is recorded at its next start, as a creation is;
// once, however often it starts again, even if it stopped before saving
// what it had recorded.
func TestKeyChangesWhileStoppedAreRecorded(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	svc := ts.createKey(t, map[string]any{"name": "svc", "roles": []string{"submitter"}})
	start := func() *api.Server {
		s, _ := newAPI(t, ts.l, api.Config{KeyFile: kf})
		if err := s.ReloadKeys(bg); err != nil {
			t.Fatalf("ReloadKeys() at start = %v", err)
		}
		return s
	}
	records := kf.Path() + ".recorded"
	saved, savedErr := os.ReadFile(records) // to stop before saving, below

	editKey(t, kf, "svc", func(k *api.APIKey) { k.Roles = append(k.Roles, api.RoleAdmin) })
	start()
	got := findAdmin(adminLeaves(t, ts.l, svc.Secret), evt.AdminKeyChanged, "svc")
	if len(got) != 1 || !slices.Equal(got[0].Changed, []string{evt.AdminChangedRoles}) {
		t.Fatalf("key_changed leaves after a start = %+v, want svc's roles", got)
	}

	// Started again, or after a stop before the records were saved:
	// nothing new.
	if savedErr != nil {
		t.Fatalf("the records of the keys: %v", savedErr)
	}
	before := size(ts.l)
	start()
	if err := os.WriteFile(records, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	start()
	if got := size(ts.l); got != before {
		t.Errorf("Size() after two more starts = %d, want %d (nothing new)", got, before)
	}
}

// waitFor waits up to 5 seconds for cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNameOfARemovedKeyIsNotReused: a revoked key deleted from the keys
// file by hand freed its name, which the admin API and the apikey command
// then gave to a new key: the log's records of the name then spoke of
// two keys. The name stays taken.
func TestNameOfARemovedKeyIsNotReused(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf))
	ts.createKey(t, map[string]any{"name": "dup", "roles": []string{"auditor"}})
	decodeKeyAnswer(t, "revoke", ts.adminCall(t, "POST", "/v1/admin/keys/dup/revoke", "", nil), http.StatusOK)
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	if err := kf.Write(slices.DeleteFunc(keys, func(k api.APIKey) bool { return k.Name == "dup" })); err != nil {
		t.Fatal(err)
	}
	if err := ts.api.ReloadKeys(bg); err != nil {
		t.Fatal(err)
	}

	before := size(ts.l)
	r := ts.adminCall(t, "POST", "/v1/admin/keys", "", map[string]any{"name": "dup", "roles": []string{"auditor"}})
	if eb := wantError(t, "create dup again", r, http.StatusConflict); !strings.Contains(eb.Error, "not reused") {
		t.Errorf("create dup again: error %q, want it to say names are not reused", eb.Error)
	}
	// The command, too (another KeyFile on the same path).
	_, _, err = api.NewKeyFile(kf.Path()).Create(api.KeySpec{Name: "dup", Roles: []api.Role{api.RoleAuditor}}, evt.AdminByCLI, time.Now(), nil)
	if !errors.Is(err, api.ErrKeyConflict) || !strings.Contains(err.Error(), "not reused") {
		t.Errorf("KeyFile.Create(dup) = %v, want ErrKeyConflict saying names are not reused", err)
	}
	if got := size(ts.l); got != before {
		t.Errorf("Size() = %d, want %d (nothing recorded)", got, before)
	}
	// A name the log never recorded is free.
	ts.createKey(t, map[string]any{"name": "fresh", "roles": []string{"auditor"}})
}

// TestHandEditedSecretWithRotationUndone: an edit by hand that chose a
// key's secret and expiry went unrecorded when it also cleared the key's
// rotated_at (no rotation to record) or set it back to an earlier
// rotation the log already held (its leaf a duplicate): a change of
// rotated_at was taken for a rotation that records them. Only a rotation
// the log did not hold yet does; otherwise secret and expiry are a change.
func TestHandEditedSecretWithRotationUndone(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(k *api.APIKey, earlier time.Time)
	}{
		{"RotatedAtCleared", func(k *api.APIKey, _ time.Time) { k.RotatedAt, k.RotatedBy = time.Time{}, "" }},
		{"RotatedAtSetBack", func(k *api.APIKey, earlier time.Time) { k.RotatedAt = earlier }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kf := newKeyFile(t)
			ts := newTestServer(t, withKeyFile(t, kf), withAPI(func(c *api.Config) { c.KeyPollInterval = 20 * time.Millisecond }))
			ts.run(t)
			ts.createKey(t, map[string]any{"name": "svc", "roles": []string{"submitter"}})
			decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", map[string]any{}), http.StatusOK)
			keys, err := kf.Read()
			if err != nil {
				t.Fatal(err)
			}
			first := keys[slices.IndexFunc(keys, func(k api.APIKey) bool { return k.Name == "svc" })].RotatedAt
			time.Sleep(5 * time.Millisecond)
			decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", map[string]any{}), http.StatusOK)

			const chosen = "al_chosen-by-hand"
			expires := time.Now().Add(10 * 365 * 24 * time.Hour).UTC().Truncate(time.Second)
			editKey(t, kf, "svc", func(k *api.APIKey) {
				k.SHA256 = api.HashToken(chosen)
				k.PreviousSHA256, k.PreviousValidUntil = "", time.Time{}
				k.ExpiresAt = expires
				tc.edit(k, first)
			})
			waitStatus(t, ts, chosen, http.StatusForbidden) // loaded: a submitter may not read
			got := waitChanges(t, ts, "svc", 1, chosen)
			if a := got[0]; !slices.Equal(a.Changed, []string{evt.AdminChangedExpiry, evt.AdminChangedSecret}) || !a.ExpiresAt.Equal(expires) || a.By != evt.AdminByCLI {
				t.Errorf("key_changed leaf = %+v, want the expiry (%s) and the secret changed, by cli", a, expires)
			}
		})
	}
}

// TestHandEditsNameNoActor: the admin leaves of actions found in the keys
// file took their actor from it (created_by, rotated_by, revoked_by), so
// an edit by hand could have the log say that the server made a key
// (created_by: accessledger) or that an admin rotated one. An action the
// server did not make itself is recorded by cli, whatever the file says;
// one it made, by the actor it knows.
func TestHandEditsNameNoActor(t *testing.T) {
	kf := newKeyFile(t)
	ts := newTestServer(t, withKeyFile(t, kf), withAPI(func(c *api.Config) { c.KeyPollInterval = 20 * time.Millisecond }))
	ts.run(t)
	ts.createKey(t, map[string]any{"name": "svc", "roles": []string{"submitter"}})
	decodeKeyAnswer(t, "rotate", ts.adminCall(t, "POST", "/v1/admin/keys/svc/rotate", "", map[string]any{}), http.StatusOK)

	// A key added by hand, claiming to be the server's.
	const backdoor = "al_backdoor-by-hand"
	keys, err := kf.Read()
	if err != nil {
		t.Fatal(err)
	}
	bd := api.APIKey{Name: "backdoor", SHA256: api.HashToken(backdoor), Roles: []api.Role{api.RoleAdmin},
		CreatedAt: time.Now().UTC(), CreatedBy: evt.AdminByServer}
	if err := kf.Write(append(keys, bd)); err != nil {
		t.Fatal(err)
	}
	// A secret rotated by hand, claiming an admin did it.
	const chosen = "al_rotated-by-hand"
	editKey(t, kf, "svc", func(k *api.APIKey) {
		k.SHA256, k.RotatedAt, k.RotatedBy = api.HashToken(chosen), time.Now().UTC(), "test-admin"
	})
	waitStatus(t, ts, chosen, http.StatusForbidden)
	waitStatus(t, ts, backdoor, http.StatusOK)
	leaves := adminLeaves(t, ts.l, chosen, backdoor)
	if got := findAdmin(leaves, evt.AdminKeyCreated, "backdoor"); len(got) != 1 || got[0].By != evt.AdminByCLI {
		t.Errorf("key_created leaves of a key added by hand = %+v, want one by cli", values(got))
	}
	rotations := findAdmin(leaves, evt.AdminKeyRotated, "svc")
	if len(rotations) != 2 || rotations[0].By != "test-admin" || rotations[1].By != evt.AdminByCLI {
		t.Errorf("key_rotated leaves of svc = %+v, want one by test-admin (over HTTP), then one by cli (by hand)", values(rotations))
	}
	if got := findAdmin(leaves, evt.AdminKeyCreated, "svc"); len(got) != 1 || got[0].By != "test-admin" {
		t.Errorf("key_created leaves of svc = %+v, want one by test-admin", values(got))
	}
}

// values returns the leaves themselves, for a message.
func values(leaves []*evt.Admin) []evt.Admin {
	out := make([]evt.Admin, len(leaves))
	for i, a := range leaves {
		out[i] = *a
	}
	return out
}

// TestNamesRecordedBeforeTheRecordsFileAreNotReused: at the first start
// of the version that keeps the records file, the names of keys deleted
// from the keys file before were free again, though the log recorded
// those keys; and a key of the configuration could take the name of one
// removed from the keys file. The admin leaves the index finds keep
// those names taken, and the configuration's keys are checked against
// the records.
func TestNamesRecordedBeforeTheRecordsFileAreNotReused(t *testing.T) {
	qs := newQueryServer(t)
	at := time.Now().UTC().Add(-time.Hour)
	for _, a := range []*evt.Admin{
		{Action: evt.AdminKeyCreated, Time: at, By: evt.AdminByCLI, Key: "gone", Roles: []string{"auditor"}},
		{Action: evt.AdminKeyRevoked, Time: at, By: evt.AdminByCLI, Key: "gone", Roles: []string{"auditor"}},
	} {
		leaf, err := evt.EncodeAdminLeaf(a, at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := qs.l.Append(bg, ledger.Entry{Data: leaf}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the index to reach the log", func() bool { return qs.x.Size() == size(qs.l) })

	kf := newKeyFile(t)
	token, boss, err := api.NewAPIKey("boss", api.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := kf.Write([]api.APIKey{boss}); err != nil {
		t.Fatal(err)
	}
	s, srv := newAPI(t, qs.l, api.Config{KeyFile: kf, Index: qs.x})
	if err := s.ReloadKeys(bg); err != nil {
		t.Fatal(err)
	}
	r := call(t, srv.URL, "POST", "/v1/admin/keys", token, "application/json", []byte(`{"name":"gone","roles":["auditor"]}`))
	if eb := wantError(t, "create gone", r, http.StatusConflict); !strings.Contains(eb.Error, "not reused") {
		t.Errorf("create gone: error %q, want it to say names are not reused", eb.Error)
	}
	if r := call(t, srv.URL, "POST", "/v1/admin/keys", token, "application/json", []byte(`{"name":"fresh","roles":["auditor"]}`)); r.status != http.StatusCreated {
		t.Errorf("create fresh = %v, want 201", r)
	}

	// A key of the configuration named as the removed one is refused at
	// start.
	_, cfgKey, err := api.NewAPIKey("gone", api.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.New(api.Config{Ledger: qs.l, KeyFile: kf, ConfigKeys: []api.APIKey{cfgKey}, Gatherer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), `"gone"`) || !strings.Contains(err.Error(), "not reused") {
		t.Errorf("api.New() with a config key named as a removed key = %v, want an error naming it", err)
	}
}
