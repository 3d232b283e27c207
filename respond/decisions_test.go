package respond_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"gopkg.in/yaml.v3"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/respond"
)

var decCtx = context.Background()

// decT0 is the start of the tests' clock.
var decT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// decClock is a clock the test moves.
type decClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *decClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *decClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// decRecorder keeps what it is given; failing makes the next calls fail.
type decRecorder struct {
	mu      sync.Mutex
	got     []*event.Response
	calls   int
	failing int
}

func (r *decRecorder) Record(_ context.Context, rs ...*event.Response) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for _, resp := range rs {
		if err := resp.Validate(); err != nil {
			return fmt.Errorf("recorder got an invalid response: %w", err)
		}
	}
	if r.failing > 0 {
		r.failing--
		return errors.New("recorder failed (injected)")
	}
	r.got = append(r.got, rs...)
	return nil
}

func (r *decRecorder) responses() []*event.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// decFixture is a decision store over a real Badger in a temporary
// directory, with a test clock and recorder; reopen closes and opens both.
type decFixture struct {
	t     testing.TB
	dir   string
	db    *badger.DB
	store *respond.Decisions
	clock *decClock
	rec   *decRecorder
	cfg   respond.DecisionsConfig
}

func newDecFixture(t testing.TB, cfg respond.DecisionsConfig) *decFixture {
	t.Helper()
	f := &decFixture{t: t, dir: t.TempDir(), clock: &decClock{now: decT0}, rec: &decRecorder{}, cfg: cfg}
	f.open()
	t.Cleanup(func() {
		if f.db != nil {
			f.db.Close()
		}
	})
	return f
}

func (f *decFixture) open() {
	f.t.Helper()
	if err := f.tryOpen(); err != nil {
		f.t.Fatalf("OpenDecisions() = %v", err)
	}
}

// tryOpen is open, returning the error of OpenDecisions (the database
// stays open).
func (f *decFixture) tryOpen() error {
	f.t.Helper()
	opts := badger.DefaultOptions(f.dir).WithLogger(nil).
		WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		f.t.Fatalf("badger.Open(%s) = %v", f.dir, err)
	}
	// Something else the caller keeps in the same DB, which the store
	// must leave alone.
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("a/other"), []byte("x")) }); err != nil {
		f.t.Fatal(err)
	}
	f.db = db
	s, err := respond.OpenDecisions(decCtx, db, []byte("d/"), f.cfg, f.rec, f.clock.Now)
	if err != nil {
		return err
	}
	f.store = s
	return nil
}

func (f *decFixture) reopen() {
	f.t.Helper()
	if err := f.db.Close(); err != nil {
		f.t.Fatalf("closing badger: %v", err)
	}
	f.open()
}

// add adds a decision on value for alert n and returns it.
func (f *decFixture) add(n uint64, value string, d time.Duration) event.Decision {
	f.t.Helper()
	in := respond.DecisionInput{Key: fmt.Sprintf("%d/%s", n, value), AlertIndex: n, DedupKey: fmt.Sprintf("dedup-%d", n),
		Scenario: "ssh-bruteforce", Value: value, Duration: d}
	dec, created, err := f.store.Add(decCtx, in)
	if err != nil || !created {
		f.t.Fatalf("Add(%q) = %v, %v, %v; want a new decision", value, dec, created, err)
	}
	return dec
}

// pull pulls for the bouncer with key name (no address) as a bouncer
// does and acknowledges the answer.
func (f *decFixture) pull(name string, startup bool) respond.StreamAnswer {
	f.t.Helper()
	return f.pullAs(respond.Bouncer{Key: name}, startup)
}

// pullAs is pull for a bouncer with an address.
func (f *decFixture) pullAs(bouncer respond.Bouncer, startup bool) respond.StreamAnswer {
	f.t.Helper()
	ans, err := f.store.Stream(decCtx, bouncer, startup, respond.DecisionQuery{})
	if err != nil {
		f.t.Fatalf("Stream(%q, %v) = %v", bouncer, startup, err)
	}
	if err := f.store.Ack(decCtx, bouncer, ans.Cursor); err != nil {
		f.t.Fatalf("Ack(%q, %d) = %v", bouncer, ans.Cursor, err)
	}
	return ans
}

// values lists "id:value" of decisions, in order.
func values(ds []respond.DecisionInfo) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%d:%s", d.ID, d.Value))
	}
	return out
}

func wantPull(t testing.TB, what string, ans respond.StreamAnswer, wantNew, wantDeleted []string) {
	t.Helper()
	if got := values(ans.New); !slices.Equal(got, wantNew) {
		t.Errorf("%s: new = %v, want %v", what, got, wantNew)
	}
	if got := values(ans.Deleted); !slices.Equal(got, wantDeleted) {
		t.Errorf("%s: deleted = %v, want %v", what, got, wantDeleted)
	}
}

func id(d event.Decision, v string) string { return fmt.Sprintf("%d:%s", d.ID, v) }

func TestDecisionsStartupSnapshot(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	a := f.add(1, "192.0.2.1", time.Hour)
	b := f.add(2, "198.51.100.7/24", 0)
	c := f.add(3, "2001:db8::1", 2*time.Hour)
	f.add(4, "192.0.2.1", 30*time.Minute) // shorter than a: bouncers see a alone

	f.clock.Advance(90 * time.Second)
	ans := f.pull("fw", true)
	if !ans.Full {
		t.Errorf("startup answer: Full = false, want true")
	}
	wantPull(t, "startup", ans, []string{id(a, "192.0.2.1"), id(b, "198.51.100.0/24"), id(c, "2001:db8::1")}, []string{})
	got := ans.New[1]
	if got.Scope != respond.ScopeRange || got.Type != "ban" || got.Origin != "accessledger" || got.Scenario != "ssh-bruteforce" {
		t.Errorf("range decision = %+v, want scope Range, type ban, origin accessledger, scenario ssh-bruteforce", got)
	}
	if want := decT0.Add(4 * time.Hour); !got.Until.Equal(want) {
		t.Errorf("range decision until = %v, want %v (the default 4h)", got.Until, want)
	}
	if ans.New[0].Scope != respond.ScopeIP || ans.New[0].UUID == "" || ans.New[0].UUID == ans.New[1].UUID {
		t.Errorf("decisions %+v: want scope Ip and distinct UUIDs", ans.New[:2])
	}
	if !ans.Now.Equal(decT0.Add(90 * time.Second)) {
		t.Errorf("answer time = %v, want the store's clock %v", ans.Now, decT0.Add(90*time.Second))
	}
}

func TestDecisionsDeltaPerBouncer(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	seen := map[string][]string{} // bouncer → every entry it was sent
	pull := func(b string) respond.StreamAnswer {
		ans := f.pull(b, false)
		for _, d := range ans.New {
			seen[b] = append(seen[b], fmt.Sprintf("new %d", d.ID))
		}
		for _, d := range ans.Deleted {
			seen[b] = append(seen[b], fmt.Sprintf("deleted %d", d.ID))
		}
		return ans
	}
	wantPull(t, "A first pull", f.pull("A", true), []string{}, []string{})
	d1 := f.add(1, "192.0.2.1", time.Hour)
	wantPull(t, "B first pull (no cursor: full)", pull("B"), []string{id(d1, "192.0.2.1")}, []string{})
	wantPull(t, "A after d1", pull("A"), []string{id(d1, "192.0.2.1")}, []string{})
	wantPull(t, "A again", pull("A"), []string{}, []string{})

	if _, err := f.store.Delete(decCtx, d1.ID, "admin-alice"); err != nil {
		t.Fatalf("Delete(%d) = %v", d1.ID, err)
	}
	d2 := f.add(2, "192.0.2.2", time.Hour)
	d3 := f.add(3, "192.0.2.3", time.Hour)
	wantPull(t, "A after delete d1, add d2 d3", pull("A"), []string{id(d2, "192.0.2.2"), id(d3, "192.0.2.3")}, []string{id(d1, "192.0.2.1")})
	if _, err := f.store.Delete(decCtx, d3.ID, "admin-alice"); err != nil {
		t.Fatal(err)
	}
	wantPull(t, "A after delete d3", pull("A"), []string{}, []string{id(d3, "192.0.2.3")})
	// B pulls once for all of it: d3 came and went, so it is only deleted.
	wantPull(t, "B after everything", pull("B"), []string{id(d2, "192.0.2.2")}, []string{id(d1, "192.0.2.1"), id(d3, "192.0.2.3")})
	wantPull(t, "B again", pull("B"), []string{}, []string{})
	wantPull(t, "A again", pull("A"), []string{}, []string{})

	for b, entries := range seen {
		if c := slices.Compact(slices.Sorted(slices.Values(entries))); len(c) != len(entries) {
			t.Errorf("bouncer %s was sent %v: an entry twice", b, entries)
		}
	}
}

func TestDecisionsStreamWithoutAckRepeats(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	f.pull("A", true)
	d := f.add(1, "192.0.2.1", time.Hour)
	for i := range 2 {
		ans, err := f.store.Stream(decCtx, respond.Bouncer{Key: "A"}, false, respond.DecisionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		wantPull(t, fmt.Sprintf("unacknowledged pull %d", i), ans, []string{id(d, "192.0.2.1")}, []string{})
	}
}

func TestDecisionsExpiry(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	f.pull("A", true)
	d := f.add(1, "192.0.2.1", time.Hour)
	f.clock.Advance(59 * time.Minute)
	wantPull(t, "A before expiry", f.pull("A", false), []string{id(d, "192.0.2.1")}, []string{})
	f.clock.Advance(time.Minute)
	ans := f.pull("A", false)
	wantPull(t, "A at expiry", ans, []string{}, []string{id(d, "192.0.2.1")})
	if len(ans.Deleted) == 1 && !ans.Deleted[0].Ended.Equal(d.Until) {
		t.Errorf("expired decision ended = %v, want its until %v", ans.Deleted[0].Ended, d.Until)
	}
	wantPull(t, "startup after expiry", f.pull("B", true), []string{}, []string{id(d, "192.0.2.1")})
	list, err := f.store.List(decCtx, respond.DecisionQuery{})
	if err != nil || len(list.Decisions) != 0 {
		t.Errorf("List() = %v, %v; want no active decision", values(list.Decisions), err)
	}
	if _, err := f.store.Delete(decCtx, d.ID, "admin"); !errors.Is(err, respond.ErrNotFound) {
		t.Errorf("Delete(expired) = %v, want ErrNotFound", err)
	}
	if got := len(f.rec.responses()); got != 1 {
		t.Errorf("recorder got %d responses, want 1 (expiry is not recorded)", got)
	}
}

func TestDecisionsLongestPerValue(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	f.pull("A", true)
	short := f.add(1, "192.0.2.9", time.Hour)
	long := f.add(2, "192.0.2.9", 3*time.Hour)
	wantPull(t, "two on one address", f.pull("A", false), []string{id(long, "192.0.2.9")}, []string{})
	// The longest is deleted: the other one applies now.
	if _, err := f.store.Delete(decCtx, long.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	wantPull(t, "after deleting the longest", f.pull("A", false), []string{id(short, "192.0.2.9")}, []string{})
	f.clock.Advance(time.Hour)
	wantPull(t, "after the other expired", f.pull("A", false), []string{}, []string{id(short, "192.0.2.9")})
	list, err := f.store.List(decCtx, respond.DecisionQuery{})
	if err != nil || len(list.Decisions) != 0 {
		t.Errorf("List() = %v, %v; want none", values(list.Decisions), err)
	}
}

func TestDecisionsDelete(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	d := f.add(7, "192.0.2.1", time.Hour)
	f.clock.Advance(time.Minute)
	got, err := f.store.Delete(decCtx, d.ID, "admin-alice")
	if err != nil || got != d {
		t.Fatalf("Delete(%d) = %+v, %v; want %+v", d.ID, got, err, d)
	}
	info, err := f.store.Get(decCtx, d.ID)
	if err != nil || info.Active() || info.DeletedBy != "admin-alice" || !info.Ended.Equal(decT0.Add(time.Minute)) {
		t.Errorf("Get(deleted) = %+v, %v; want ended at %v by admin-alice", info, err, decT0.Add(time.Minute))
	}
	for _, id := range []uint64{d.ID, 999} {
		if _, err := f.store.Delete(decCtx, id, "admin-alice"); !errors.Is(err, respond.ErrNotFound) {
			t.Errorf("Delete(%d) = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := f.store.Get(decCtx, 999); !errors.Is(err, respond.ErrNotFound) {
		t.Errorf("Get(999) = %v, want ErrNotFound", err)
	}
}

func TestDecisionsAllowList(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	for _, v := range []string{"127.0.0.1", "127.9.9.9/32", "::1", "::ffff:127.0.0.1", "127.0.0.0/30", "126.0.0.0/7", "0.0.0.0/0", "::/0"} {
		_, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: v, Scenario: "r", Value: v})
		if !errors.Is(err, respond.ErrAllowListed) {
			t.Errorf("Add(%q) = %v, want ErrAllowListed", v, err)
		}
	}
	custom := newDecFixture(t, respond.DecisionsConfig{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, v := range []string{"10.1.2.3", "10.0.0.0/7"} {
		if _, _, err := custom.store.Add(decCtx, respond.DecisionInput{Key: v, Scenario: "r", Value: v}); !errors.Is(err, respond.ErrAllowListed) {
			t.Errorf("with allow 10.0.0.0/8: Add(%q) = %v, want ErrAllowListed", v, err)
		}
	}
	if _, _, err := custom.store.Add(decCtx, respond.DecisionInput{Key: "lo", Scenario: "r", Value: "127.0.0.1"}); err != nil {
		t.Errorf("with allow 10.0.0.0/8: Add(127.0.0.1) = %v, want it made (the list replaces the default)", err)
	}
	if n := len(f.rec.responses()); n != 0 {
		t.Errorf("recorder got %d responses for refused decisions, want 0", n)
	}
}

func TestDecisionsValues(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	tests := []struct{ in, scope, value string }{
		{"192.0.2.1", "Ip", "192.0.2.1"},
		{"192.0.2.2/32", "Ip", "192.0.2.2"},
		{"::ffff:192.0.2.3", "Ip", "192.0.2.3"},
		{"192.0.2.77/24", "Range", "192.0.2.0/24"},
		{"::ffff:198.51.100.0/120", "Range", "198.51.100.0/24"},
		{"2001:DB8::1", "Ip", "2001:db8::1"},
		{"2001:db8::2/128", "Ip", "2001:db8::2"},
		{"2001:db8:1::5/48", "Range", "2001:db8:1::/48"},
	}
	for i, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: fmt.Sprint(i), Scenario: "r", Value: tt.in})
			if err != nil || d.Scope != tt.scope || d.Value != tt.value {
				t.Errorf("Add(%q) = %s %s, %v; want %s %s", tt.in, d.Scope, d.Value, err, tt.scope, tt.value)
			}
		})
	}
	bad := []respond.DecisionInput{
		{Key: "a", Scenario: "r", Value: "not-an-ip"},
		{Key: "b", Scenario: "r", Value: "192.0.2.1/33"},
		{Key: "c", Scenario: "r", Value: "fe80::1%eth0"},
		{Key: "d", Scenario: "r", Value: ""},
		{Key: "", Scenario: "r", Value: "192.0.2.1"},
		{Key: "e", Scenario: "", Value: "192.0.2.1"},
		{Key: "f", Scenario: "r", Value: "192.0.2.1", Type: "Ban Now"},
	}
	for _, in := range bad {
		var ie *respond.DecisionInputError
		if _, _, err := f.store.Add(decCtx, in); !errors.As(err, &ie) {
			t.Errorf("Add(%+v) = %v, want a *DecisionInputError", in, err)
		}
	}
}

func TestDecisionsIdempotentAdd(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	in := respond.DecisionInput{Key: "42/192.0.2.1", AlertIndex: 42, DedupKey: "k", Scenario: "r", Value: "192.0.2.1", Duration: time.Hour}
	first, created, err := f.store.Add(decCtx, in)
	if err != nil || !created {
		t.Fatalf("Add() = %v, %v, %v", first, created, err)
	}
	f.clock.Advance(time.Minute)
	again, created, err := f.store.Add(decCtx, in)
	if err != nil || created || again != first {
		t.Errorf("Add(same key) = %+v, %v, %v; want %+v, false, nil", again, created, err, first)
	}
	f.reopen()
	again, created, err = f.store.Add(decCtx, in)
	if err != nil || created || again != first {
		t.Errorf("after reopening, Add(same key) = %+v, %v, %v; want %+v, false, nil", again, created, err, first)
	}
	// Deleted, the key still names it: replaying the alert bans nobody.
	if _, err := f.store.Delete(decCtx, first.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if again, created, err = f.store.Add(decCtx, in); err != nil || created || again.ID != first.ID {
		t.Errorf("after deleting, Add(same key) = %+v, %v, %v; want decision %d, false, nil", again, created, err, first.ID)
	}
	if got := len(f.rec.responses()); got != 2 {
		t.Errorf("recorder got %d responses, want 2 (one add, one delete)", got)
	}
}

func TestDecisionsRecorder(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	d := f.add(42, "192.0.2.1", time.Hour)
	f.clock.Advance(time.Minute)
	if _, err := f.store.Delete(decCtx, d.ID, "admin-alice"); err != nil {
		t.Fatal(err)
	}
	got := f.rec.responses()
	if len(got) != 2 {
		t.Fatalf("recorder got %d responses, want 2", len(got))
	}
	add, del := got[0], got[1]
	if add.Action != event.ActionDecisionAdded || add.By != "accessledger" || add.Alert == nil || *add.Alert != 42 ||
		add.DedupKey != "dedup-42" || add.Decision == nil || *add.Decision != d || !add.Time.Equal(decT0) {
		t.Errorf("added response = %+v, want decision_added by accessledger for alert 42 (dedup-42), decision %+v, at %v", add, d, decT0)
	}
	if del.Action != event.ActionDecisionDeleted || del.By != "admin-alice" || del.Alert == nil || *del.Alert != 42 ||
		del.Decision == nil || del.Decision.ID != d.ID || !del.Time.Equal(decT0.Add(time.Minute)) {
		t.Errorf("deleted response = %+v, want decision_deleted by admin-alice for alert 42 at %v", del, decT0.Add(time.Minute))
	}
	// Expiry and pulls record nothing.
	f.add(43, "192.0.2.2", time.Minute)
	f.clock.Advance(time.Hour)
	f.pull("A", true)
	if n := len(f.rec.responses()); n != 3 {
		t.Errorf("recorder got %d responses, want 3", n)
	}
}

func TestDecisionsRecorderFailureIsRetried(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	in := respond.DecisionInput{Key: "1/192.0.2.1", AlertIndex: 1, Scenario: "r", Value: "192.0.2.1"}
	f.rec.failing = 1
	d, created, err := f.store.Add(decCtx, in)
	if err == nil || !created {
		t.Fatalf("Add() with a failing recorder = %v, %v, %v; want created and an error", d, created, err)
	}
	// The decision stands, and bouncers see it.
	wantPull(t, "startup", f.pull("A", true), []string{id(d, "192.0.2.1")}, []string{})
	// Survives a restart: retrying the alert records it, once.
	f.reopen()
	for range 2 {
		if _, created, err := f.store.Add(decCtx, in); err != nil || created {
			t.Fatalf("Add(again) = %v, %v; want not created, no error", created, err)
		}
	}
	f.rec.failing = 1
	if _, err := f.store.Delete(decCtx, d.ID, "admin"); err == nil {
		t.Fatalf("Delete() with a failing recorder = nil, want an error")
	}
	for range 2 {
		_, err := f.store.Delete(decCtx, d.ID, "admin")
		if n := len(f.rec.responses()); n != 2 {
			t.Fatalf("after retrying Delete (%v), recorder has %d responses, want 2", err, n)
		}
	}
	if got := f.rec.responses(); got[0].Action != event.ActionDecisionAdded || got[1].Action != event.ActionDecisionDeleted {
		t.Errorf("recorded %s, %s; want decision_added, decision_deleted", got[0].Action, got[1].Action)
	}
}

// TestDecisionsAddAll: AddAll does what Add would do input by input (a
// key made earlier or earlier in the same call, the allow-list, an
// invalid value, MaxActive), commits the decisions it makes together and
// hands them to the Recorder in one call; a failed recording is retried
// by the next call with the same keys, once per decision.
func TestDecisionsAddAll(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{MaxActive: 4})
	old := f.add(1, "192.0.2.1", time.Hour)
	calls := f.rec.calls
	in := func(n int, value string) respond.DecisionInput {
		return respond.DecisionInput{Key: fmt.Sprintf("k%d", n), AlertIndex: uint64(n), DedupKey: fmt.Sprintf("dedup-%d", n),
			Scenario: "r", Value: value, Duration: time.Hour}
	}
	ins := []respond.DecisionInput{
		in(2, "192.0.2.2"),
		{Key: "1/192.0.2.1", Scenario: "r", Value: "192.0.2.1"}, // made by Add before
		in(3, "127.0.0.1"), // allow-listed
		in(4, "not an ip"), // invalid
		in(5, "192.0.2.5"), //
		in(2, "192.0.2.2"), // the same key as the first
		in(6, "192.0.2.6"), // the fourth active decision
		in(7, "192.0.2.7"), // beyond MaxActive
	}
	res, err := f.store.AddAll(decCtx, ins)
	if err != nil {
		t.Fatalf("AddAll() = %v", err)
	}
	if len(res) != len(ins) {
		t.Fatalf("AddAll() gave %d results for %d inputs", len(res), len(ins))
	}
	var inputErr *respond.DecisionInputError
	for i, check := range []struct {
		created bool
		err     func(error) bool
	}{
		{true, nil}, {false, nil}, {false, func(err error) bool { return errors.Is(err, respond.ErrAllowListed) }},
		{false, func(err error) bool { return errors.As(err, &inputErr) }}, {true, nil}, {false, nil}, {true, nil},
		{false, func(err error) bool { return errors.Is(err, respond.ErrDecisionsFull) }},
	} {
		r := res[i]
		if r.Created != check.created || (check.err == nil) != (r.Err == nil) || check.err != nil && !check.err(r.Err) {
			t.Errorf("result %d (%s) = created %v, %v; want created %v and the matching error", i, ins[i].Value, r.Created, r.Err, check.created)
		}
	}
	if res[1].Decision != old {
		t.Errorf("result for the key made by Add = %+v, want %+v", res[1].Decision, old)
	}
	if res[5].Decision != res[0].Decision {
		t.Errorf("the repeated key got decision %+v, want the first's %+v", res[5].Decision, res[0].Decision)
	}
	if got := f.rec.calls - calls; got != 1 {
		t.Errorf("the recorder was called %d times for one AddAll, want 1", got)
	}
	got := f.rec.responses()[1:]
	if len(got) != 3 {
		t.Fatalf("recorder got %d responses for AddAll, want 3 (the decisions it made)", len(got))
	}
	for i, want := range []event.Decision{res[0].Decision, res[4].Decision, res[6].Decision} {
		if r := got[i]; r.Action != event.ActionDecisionAdded || r.Decision == nil || *r.Decision != want || r.DedupKey != ins[[]int{0, 4, 6}[i]].DedupKey {
			t.Errorf("response %d = %+v, want decision_added of %+v", i, r, want)
		}
	}
	// Committed: a restarted store has them, and bouncers see all four.
	f.reopen()
	want := []string{id(old, "192.0.2.1"), id(res[0].Decision, "192.0.2.2"), id(res[4].Decision, "192.0.2.5"), id(res[6].Decision, "192.0.2.6")}
	wantPull(t, "startup after AddAll", f.pull("A", true), want, []string{})

	// A recording that fails leaves the decisions made; the next AddAll
	// with the same keys records each of them once.
	g := newDecFixture(t, respond.DecisionsConfig{})
	g.rec.failing = 1
	batch := []respond.DecisionInput{in(10, "198.51.100.10"), in(11, "198.51.100.11")}
	res, err = g.store.AddAll(decCtx, batch)
	if err == nil || len(res) != 2 || !res[0].Created || !res[1].Created {
		t.Fatalf("AddAll() with a failing recorder = %+v, %v; want both made and an error", res, err)
	}
	for range 2 {
		res, err := g.store.AddAll(decCtx, batch)
		if err != nil || res[0].Created || res[1].Created {
			t.Fatalf("AddAll(again) = %+v, %v; want neither made again, no error", res, err)
		}
	}
	if n := len(g.rec.responses()); n != 2 {
		t.Errorf("after retrying, the recorder has %d responses, want 2", n)
	}
}

func TestDecisionsPersistence(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	d1 := f.add(1, "192.0.2.1", time.Hour)
	d2 := f.add(2, "192.0.2.0/28", 2*time.Hour)
	d3 := f.add(3, "2001:db8::/64", 3*time.Hour)
	f.pull("A", true)
	f.pull("B", true)
	if _, err := f.store.Delete(decCtx, d2.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	f.pull("A", false) // A has seen the deletion, B has not

	f.reopen()
	wantPull(t, "A after reopening", f.pull("A", false), []string{}, []string{})
	wantPull(t, "B after reopening", f.pull("B", false), []string{}, []string{id(d2, "192.0.2.0/28")})
	wantPull(t, "startup after reopening", f.pull("C", true), []string{id(d1, "192.0.2.1"), id(d3, "2001:db8::/64")}, []string{id(d2, "192.0.2.0/28")})
	d4 := f.add(4, "192.0.2.4", 3*time.Hour)
	if d4.ID <= d3.ID {
		t.Errorf("after reopening, new decision id %d, want above %d", d4.ID, d3.ID)
	}
	wantPull(t, "A after a new one", f.pull("A", false), []string{id(d4, "192.0.2.4")}, []string{})
	// Expiry while closed shows on the next pull.
	f.reopen()
	f.clock.Advance(90 * time.Minute)
	wantPull(t, "B after the first hour", f.pull("B", false), []string{id(d4, "192.0.2.4")}, []string{id(d1, "192.0.2.1")})
	f.reopen()
	wantPull(t, "A after the first hour", f.pull("A", false), []string{}, []string{id(d1, "192.0.2.1")})
	// The caller's own key is untouched.
	err := f.db.View(func(txn *badger.Txn) error { _, err := txn.Get([]byte("a/other")); return err })
	if err != nil {
		t.Errorf("the caller's key a/other: %v", err)
	}
}

func TestDecisionsHistory(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{History: time.Hour})
	f.pull("A", true)
	f.pull("B", true)
	d1 := f.add(1, "192.0.2.1", 10*time.Minute)
	d2 := f.add(2, "192.0.2.2", 5*time.Hour)
	f.pull("A", false)
	f.clock.Advance(2 * time.Hour) // d1 expires now (unseen by anyone since), then…
	wantPull(t, "A after d1 expired", f.pull("A", false), []string{}, []string{id(d1, "192.0.2.1")})
	f.clock.Advance(2 * time.Hour) // … its change is pruned
	ans := f.pull("B", false)
	if !ans.Full {
		t.Errorf("B, gone beyond the history: Full = false, want a full answer")
	}
	wantPull(t, "B gone beyond the history", ans, []string{id(d2, "192.0.2.2")}, []string{})
	if _, err := f.store.Get(decCtx, d1.ID); !errors.Is(err, respond.ErrNotFound) {
		t.Errorf("Get(pruned %d) = %v, want ErrNotFound", d1.ID, err)
	}
	f.reopen()
	wantPull(t, "A after reopening", f.pull("A", false), []string{}, []string{})
	if _, err := f.store.Get(decCtx, d1.ID); !errors.Is(err, respond.ErrNotFound) {
		t.Errorf("after reopening, Get(pruned %d) = %v, want ErrNotFound", d1.ID, err)
	}
	n := 0
	f.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("d/d")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if n != 1 {
		t.Errorf("badger holds %d decision records, want 1 (the pruned one deleted)", n)
	}
}

func TestDecisionsQuery(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	ip := f.add(1, "192.0.2.5", time.Hour)
	rng := f.add(2, "192.0.2.0/24", time.Hour)
	v6 := f.add(3, "2001:db8::5", time.Hour)
	in := respond.DecisionInput{Key: "4", Scenario: "http-crawl", Value: "198.51.100.1", Type: "captcha"}
	other, _, err := f.store.Add(decCtx, in)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{id(ip, "192.0.2.5"), id(rng, "192.0.2.0/24"), id(v6, "2001:db8::5"), id(other, "198.51.100.1")}
	pfx := netip.MustParsePrefix
	tests := []struct {
		name string
		q    respond.DecisionQuery
		want []string
	}{
		{"all", respond.DecisionQuery{}, all},
		{"scopes ip", respond.DecisionQuery{Scopes: []string{"ip"}}, []string{all[0], all[2], all[3]}},
		{"scopes RANGE", respond.DecisionQuery{Scopes: []string{"RANGE"}}, []string{all[1]}},
		{"scopes unknown", respond.DecisionQuery{Scopes: []string{"country"}}, []string{}},
		{"origins", respond.DecisionQuery{Origins: []string{"cscli", "accessledger"}}, all},
		{"other origin", respond.DecisionQuery{Origins: []string{"cscli"}}, []string{}},
		{"scenarios containing", respond.DecisionQuery{ScenariosContaining: []string{"CRAWL", "nothing"}}, []string{all[3]}},
		{"scenarios not containing", respond.DecisionQuery{ScenariosNotContaining: []string{"ssh"}}, []string{all[3]}},
		{"type", respond.DecisionQuery{Type: "captcha"}, []string{all[3]}},
		{"value", respond.DecisionQuery{Value: "192.0.2.0/24"}, []string{all[1]}},
		{"ip inside both", respond.DecisionQuery{Range: pfx("192.0.2.5/32")}, []string{all[0], all[1]}},
		{"ip inside the range", respond.DecisionQuery{Range: pfx("192.0.2.9/32")}, []string{all[1]}},
		{"mapped ip", respond.DecisionQuery{Range: pfx("::ffff:192.0.2.9/128")}, []string{all[1]}},
		{"range contained by", respond.DecisionQuery{Range: pfx("192.0.2.0/25")}, []string{all[1]}},
		{"within a range", respond.DecisionQuery{Range: pfx("192.0.0.0/16"), Within: true}, []string{all[0], all[1]}},
		{"v6", respond.DecisionQuery{Range: pfx("2001:db8::5/128")}, []string{all[2]}},
		{"none", respond.DecisionQuery{Range: pfx("203.0.113.1/32")}, []string{}},
		{"limit", respond.DecisionQuery{Limit: 2}, all[:2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := f.store.List(decCtx, tt.q)
			if got := values(list.Decisions); err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("List(%+v) = %v, %v; want %v", tt.q, got, err, tt.want)
			}
		})
	}
	// Stream filters the same way, and selects Ip and Range by default.
	ans, err := f.store.Stream(decCtx, respond.Bouncer{Key: "A"}, true, respond.DecisionQuery{ScenariosContaining: []string{"crawl"}})
	if err != nil {
		t.Fatal(err)
	}
	wantPull(t, "stream scenarios_containing=crawl", ans, []string{all[3]}, []string{})
	ans, err = f.store.Stream(decCtx, respond.Bouncer{Key: "A"}, true, respond.DecisionQuery{Scopes: []string{"range"}})
	if err != nil {
		t.Fatal(err)
	}
	wantPull(t, "stream scopes=range", ans, []string{all[1]}, []string{})
}

func TestDecisionsMaxActive(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{MaxActive: 2})
	d := f.add(1, "192.0.2.1", time.Minute)
	f.add(2, "192.0.2.2", time.Hour)
	if _, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: "3", Scenario: "r", Value: "192.0.2.3"}); !errors.Is(err, respond.ErrDecisionsFull) {
		t.Errorf("Add(third of 2) = %v, want ErrDecisionsFull", err)
	}
	if _, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: "1/192.0.2.1", Scenario: "r", Value: "192.0.2.1"}); err != nil {
		t.Errorf("Add(existing key) when full = %v, want the existing decision %d", err, d.ID)
	}
	f.clock.Advance(time.Minute)
	if _, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: "3", Scenario: "r", Value: "192.0.2.3"}); err != nil {
		t.Errorf("Add() after one expired = %v, want room", err)
	}
}

func TestDecisionsForAlert(t *testing.T) {
	a := &event.Alert{DedupKey: "dk", Rule: event.AlertRule{ID: "brute-force"}, Response: []event.ResponseAction{
		{Action: "ban", Target: "source.ip", Value: "192.0.2.1", DurationSeconds: 600},
		{Action: "notify"},
		{Action: "ban", Target: "source.ip", Value: "2001:db8::/64"},
		{Action: "ban", Target: "actor.id", Value: "alice"},
		{Action: "disable_account", Target: "actor.id", Value: "alice"},
	}}
	got := respond.DecisionsForAlert(a, 17, decT0, 4*time.Hour)
	want := []respond.DecisionInput{
		{Key: "17/192.0.2.1", AlertIndex: 17, DedupKey: "dk", Scenario: "brute-force", Type: "ban", Value: "192.0.2.1", Duration: 10 * time.Minute, Since: decT0},
		{Key: "17/2001:db8::/64", AlertIndex: 17, DedupKey: "dk", Scenario: "brute-force", Type: "ban", Value: "2001:db8::/64", Duration: 4 * time.Hour, Since: decT0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("DecisionsForAlert() = %+v, want %+v", got, want)
	}
}

// TestDecisionCountsFromItsAlert: a ban counts from when the log received
// its alert, not from when the responders processed it. Processed late
// (the responders were off, or catch up on an old log), it ran its whole
// duration from then; and one whose time had passed was made anyway.
func TestDecisionCountsFromItsAlert(t *testing.T) {
	f := newDecFixture(t, respond.DefaultDecisionsConfig())
	in := respond.DecisionInput{Key: "1/192.0.2.1", AlertIndex: 1, Scenario: "r", Value: "192.0.2.1",
		Duration: 20 * time.Second, Since: decT0.Add(-15 * time.Second)}
	dec, created, err := f.store.Add(decCtx, in)
	if err != nil || !created || !dec.Until.Equal(decT0.Add(5*time.Second)) {
		t.Fatalf("Add(20 s from 15 s ago) = %+v, %v, %v; want a decision until %s", dec, created, err, decT0.Add(5*time.Second))
	}
	in = respond.DecisionInput{Key: "2/192.0.2.2", AlertIndex: 2, Scenario: "r", Value: "192.0.2.2",
		Duration: 20 * time.Second, Since: decT0.Add(-25 * time.Second)}
	if dec, created, err := f.store.Add(decCtx, in); !errors.Is(err, respond.ErrEnded) || created {
		t.Fatalf("Add(20 s from 25 s ago) = %+v, %v, %v; want ErrEnded", dec, created, err)
	}
	// Without Since, from now.
	dec = f.add(3, "192.0.2.3", time.Minute)
	if !dec.Until.Equal(decT0.Add(time.Minute)) {
		t.Errorf("Add(1 m) until %s, want %s", dec.Until, decT0.Add(time.Minute))
	}
}

func TestDecisionsConfigYAML(t *testing.T) {
	var cfg respond.DecisionsConfig
	src := "default_duration: 2h\nallow: [10.0.0.0/8, \"::1/128\"]\norigin: mine\nmax_active: 5\nhistory: 48h\n"
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatalf("yaml.Unmarshal(%q) = %v", src, err)
	}
	want := respond.DecisionsConfig{DefaultDuration: 2 * time.Hour, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Origin: "mine", MaxActive: 5, History: 48 * time.Hour}
	if cfg.DefaultDuration != want.DefaultDuration || !slices.Equal(cfg.Allow, want.Allow) || cfg.Origin != want.Origin ||
		cfg.MaxActive != want.MaxActive || cfg.History != want.History {
		t.Errorf("yaml.Unmarshal(%q) = %+v, want %+v", src, cfg, want)
	}
}

func TestDecisionsStorageFailure(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	d := f.add(1, "192.0.2.1", time.Hour)
	f.pull("A", true)
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.store.Add(decCtx, respond.DecisionInput{Key: "2", Scenario: "r", Value: "192.0.2.2"}); err == nil {
		t.Fatalf("Add() on a closed database = nil, want an error")
	}
	if _, err := f.store.Stream(decCtx, respond.Bouncer{Key: "A"}, false, respond.DecisionQuery{}); err == nil {
		t.Errorf("Stream() after a failed commit that could not be undone = nil, want an error")
	}
	f.open() // the failed Add left nothing behind
	wantPull(t, "after the failure", f.pull("B", true), []string{id(d, "192.0.2.1")}, []string{})
	wantPull(t, "A after the failure", f.pull("A", false), []string{}, []string{})
}

// TestDecisionsBouncersSharingAKey: bouncers that pull with one API key
// from two addresses have a position each, as CrowdSec's name@ip
// bouncers do. They shared one: one's pull took the changes the other
// had not seen, and one's startup moved the other past a ban.
func TestDecisionsBouncersSharingAKey(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	a, b := respond.Bouncer{Key: "fw", IP: "192.0.2.10"}, respond.Bouncer{Key: "fw", IP: "2001:db8::10"}
	f.pullAs(a, true)
	f.pullAs(b, true)
	d1 := f.add(1, "198.51.100.1", time.Hour)
	wantPull(t, "a after a ban", f.pullAs(a, false), []string{id(d1, "198.51.100.1")}, []string{})
	wantPull(t, "b after a ban a has pulled", f.pullAs(b, false), []string{id(d1, "198.51.100.1")}, []string{})

	// A startup of one does not move the other.
	if _, err := f.store.Delete(decCtx, d1.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	d2 := f.add(2, "198.51.100.2", time.Hour)
	wantPull(t, "a restarting", f.pullAs(a, true), []string{id(d2, "198.51.100.2")}, []string{id(d1, "198.51.100.1")})
	f.reopen()
	ans := f.pullAs(b, false)
	if ans.Full {
		t.Errorf("b after a's startup and a restart: a full answer, want its delta")
	}
	wantPull(t, "b after a's startup", ans, []string{id(d2, "198.51.100.2")}, []string{id(d1, "198.51.100.1")})
	wantPull(t, "a after its startup", f.pullAs(a, false), []string{}, []string{})
}

// decPositionKeys lists the stored bouncer positions' keys (after the
// store's prefix and kind).
func decPositionKeys(t testing.TB, db *badger.DB) []string {
	t.Helper()
	var out []string
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("d/c")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()[3:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecisionsBouncerPositionsBounded: a key pulling from ever new
// addresses cannot grow the store without bound. Positions behind the
// pruned changes are forgotten (their bouncers get a full answer
// anyway), and beyond MaxBouncersPerKey the key's least recent one is.
// A cursor stored per key alone, by an earlier version, is not used and
// is deleted.
func TestDecisionsBouncerPositionsBounded(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{History: time.Hour})
	// An earlier version's cursor of key "old", at change 0.
	if err := f.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("d/cold"), make([]byte, 8)) }); err != nil {
		t.Fatal(err)
	}
	f.reopen()
	f.add(1, "198.51.100.1", 5*time.Hour)
	if ans := f.pullAs(respond.Bouncer{Key: "old", IP: "192.0.2.1"}, false); !ans.Full {
		t.Errorf("first pull after the upgrade of a key with a cursor per key: not a full answer")
	}
	if keys := decPositionKeys(t, f.db); slices.Contains(keys, "old") {
		t.Errorf("stored positions %q: the per-key cursor of an earlier version is still there", keys)
	}

	idle, busy := respond.Bouncer{Key: "fw", IP: "192.0.2.1"}, respond.Bouncer{Key: "fw", IP: "192.0.2.2"}
	f.pullAs(idle, true)
	f.add(2, "198.51.100.2", 5*time.Hour) // a change idle does not see before it is pruned
	for range 5 {
		f.clock.Advance(15 * time.Minute)
		f.pullAs(busy, false)
	}
	if keys := decPositionKeys(t, f.db); slices.Contains(keys, "fw\x00192.0.2.1") {
		t.Errorf("stored positions %q: the one unused for more than History is still there", keys)
	}
	f.reopen()
	if ans := f.pullAs(idle, false); !ans.Full {
		t.Errorf("pull of a bouncer away longer than History: not a full answer")
	}
	if ans := f.pullAs(busy, false); ans.Full {
		t.Errorf("pull of a bouncer that pulled 15 minutes ago: a full answer, want its delta")
	}

	g := newDecFixture(t, respond.DecisionsConfig{})
	g.add(1, "198.51.100.1", time.Hour)
	first := respond.Bouncer{Key: "many", IP: "10.0.0.0"}
	g.pullAs(first, true)
	for i := 1; i <= respond.MaxBouncersPerKey; i++ {
		g.clock.Advance(time.Millisecond)
		g.pullAs(respond.Bouncer{Key: "many", IP: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}, true)
	}
	g.pullAs(respond.Bouncer{Key: "other", IP: "10.0.0.0"}, true)
	keys := decPositionKeys(t, g.db)
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, "many\x00") {
			n++
		}
	}
	if n != respond.MaxBouncersPerKey || slices.Contains(keys, "many\x0010.0.0.0") || !slices.Contains(keys, "other\x0010.0.0.0") {
		t.Errorf("after %d addresses of one key: %d positions of it stored (the first one there: %v), want %d without the first, and the other key's",
			respond.MaxBouncersPerKey+1, n, slices.Contains(keys, "many\x0010.0.0.0"), respond.MaxBouncersPerKey)
	}
	g.reopen()
	if ans := g.pullAs(first, false); !ans.Full {
		t.Errorf("the key's least recent bouncer, forgotten: not a full answer")
	}
}

// TestDecisionsPruningOpensAtEveryCommit: pruning commits in batches, and
// every state it commits opens. It pruned changes and ended decisions in
// separate lists, so that a committed batch deleted a decision that a
// later change still named: a crash then (or a failed commit, which
// reloads the state) left a store that refused to open ("change N names
// decision M, which is not stored").
func TestDecisionsPruningOpensAtEveryCommit(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{History: time.Hour})
	const n = 5000 // 10,000 changes: pruned in several batches
	for i := 0; i < n; i += 256 {
		var ins []respond.DecisionInput
		for j := i; j < min(i+256, n); j++ {
			ins = append(ins, respond.DecisionInput{Key: fmt.Sprint(j), Scenario: "r",
				Value: netip.AddrFrom4([4]byte{10, 1, byte(j >> 8), byte(j)}).String(), Duration: time.Minute})
		}
		if _, err := f.store.AddAll(decCtx, ins); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(2 * time.Minute)
	f.pull("A", false) // all expire

	// Before each commit, the state committed so far must open.
	commits := 0
	f.store.SetCommitHook(func() error {
		commits++
		if _, err := respond.OpenDecisions(decCtx, f.db, []byte("d/"), f.cfg, nil, f.clock.Now); err != nil {
			t.Errorf("before commit %d of the pruning, the committed state does not open: %v", commits, err)
			return err
		}
		if commits == 3 {
			return errors.New("commit failed (injected)")
		}
		return nil
	})
	f.clock.Advance(2 * time.Hour)
	if _, err := f.store.Stream(decCtx, respond.Bouncer{Key: "A"}, false, respond.DecisionQuery{}); err == nil {
		t.Fatalf("Stream() with a failing commit = nil error, want the failure")
	}
	// The failure reloaded what was committed; the next call goes on.
	ans := f.pull("A", false)
	if commits < 5 {
		t.Errorf("pruning took %d commits, want several batches", commits)
	}
	wantPull(t, "after pruning", ans, []string{}, []string{})
	f.reopen()
	n2 := 0
	f.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("d/d")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n2++
		}
		return nil
	})
	if n2 != 0 {
		t.Errorf("after pruning, %d decision records are stored, want 0", n2)
	}
}

// TestDecisionsAllowListEndsExisting: a value allow-listed after it was
// banned is no longer banned. Decisions made before stayed active, as if
// the allow-list only stopped new ones; CrowdSec expires them. Opening
// with the allow-list deletes them, as deleted by accessledger: bouncers
// get them in deleted, and the log records each as decision_deleted,
// again after a failed recording.
func TestDecisionsAllowListEndsExisting(t *testing.T) {
	f := newDecFixture(t, respond.DecisionsConfig{})
	inside := f.add(1, "10.1.2.3", time.Hour)
	rng := f.add(2, "10.2.0.0/16", time.Hour)
	wider := f.add(3, "8.0.0.0/6", time.Hour) // holds 10.0.0.0/8
	kept := f.add(4, "192.0.2.1", time.Hour)
	f.pull("A", true)
	f.clock.Advance(time.Minute)

	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f.cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	f.rec.failing = 1
	if err := f.tryOpen(); err == nil {
		t.Errorf("OpenDecisions() with a failing recorder = nil, want its error")
	}
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	f.open()
	ended := []string{id(inside, "10.1.2.3"), id(rng, "10.2.0.0/16"), id(wider, "8.0.0.0/6")}
	wantPull(t, "A after the allow-list grew", f.pull("A", false), []string{}, ended)
	wantPull(t, "B at startup", f.pull("B", true), []string{id(kept, "192.0.2.1")}, ended)
	info, err := f.store.Get(decCtx, inside.ID)
	if err != nil || info.Active() || info.DeletedBy != "accessledger" || !info.Ended.Equal(decT0.Add(time.Minute)) {
		t.Errorf("Get(allow-listed) = %+v, %v; want deleted by accessledger at %v", info, err, decT0.Add(time.Minute))
	}
	var deleted []string
	for _, r := range f.rec.responses() {
		if r.Action != event.ActionDecisionDeleted {
			continue
		}
		deleted = append(deleted, id(*r.Decision, r.Decision.Value))
		if r.By != "accessledger" || r.Note == "" || r.Alert == nil || !r.Time.Equal(decT0.Add(time.Minute)) {
			t.Errorf("response %+v: want decision_deleted by accessledger, with a note, its alert and the time it ended", r)
		}
	}
	if !slices.Equal(deleted, ended) {
		t.Errorf("decision_deleted recorded for %v, want %v, once each", deleted, ended)
	}
	f.reopen()
	if n := len(f.rec.responses()); n != 4+3 {
		t.Errorf("after reopening, the recorder has %d responses, want 7 (nothing recorded twice)", n)
	}
}

// TestDecisionsClockStepsBack: after the clock jumped ahead and was set
// back (an NTP correction), decisions count from the clock again, across
// a restart; the one that expired under the fast clock stays ended, as
// bouncers were told; what it logged ahead is pruned from the correction.
func TestDecisionsClockStepsBack(t *testing.T) {
	f := newDecFixture(t, respond.DefaultDecisionsConfig())
	f.pull("A", true)
	d1 := f.add(1, "192.0.2.1", 4*time.Hour)
	wantPull(t, "A before the jump", f.pull("A", false), []string{id(d1, "192.0.2.1")}, []string{})

	f.clock.Advance(30 * 24 * time.Hour)
	list, err := f.store.List(decCtx, respond.DecisionQuery{})
	if err != nil || len(list.Decisions) != 0 {
		t.Fatalf("List() 30 days ahead = %v, %v; want no active decision", values(list.Decisions), err)
	}
	wantPull(t, "A 30 days ahead", f.pull("A", false), []string{}, []string{id(d1, "192.0.2.1")})

	f.clock.Advance(-30*24*time.Hour + time.Minute)
	ban := func(n uint64, value string, since bool) event.Decision {
		t.Helper()
		now := f.clock.Now()
		in := respond.DecisionInput{Key: fmt.Sprintf("%d/%s", n, value), AlertIndex: n, Scenario: "ssh-bruteforce",
			Value: value, Duration: 4 * time.Hour}
		if since {
			in.Since = now
		}
		dec, created, err := f.store.Add(decCtx, in)
		if err != nil || !created || !dec.Until.Equal(now.Add(4*time.Hour)) {
			t.Fatalf("Add(%s for 4h, since %v) after the clock stepped back = %+v, %v, %v; want a decision until %s",
				value, since, dec, created, err, now.Add(4*time.Hour))
		}
		return dec
	}
	d2 := ban(2, "192.0.2.1", true)
	ans := f.pull("A", false)
	wantPull(t, "A after the clock stepped back", ans, []string{id(d2, "192.0.2.1")}, []string{})
	if len(ans.New) == 1 {
		if left := ans.New[0].Until.Sub(ans.Now); left != 4*time.Hour {
			t.Errorf("time left of %d shown = %s, want 4h0m0s", d2.ID, left)
		}
	}
	if got, err := f.store.Get(decCtx, d1.ID); err != nil || got.Active() {
		t.Errorf("Get(%d), expired under the fast clock = %+v, %v; want it ended", d1.ID, got, err)
	}

	f.reopen()
	d3 := ban(3, "192.0.2.3", true)
	d4 := ban(4, "192.0.2.4", false)
	wantPull(t, "A after reopening", f.pull("A", false), []string{id(d3, "192.0.2.3"), id(d4, "192.0.2.4")}, []string{})
	ans = f.pull("B", true)
	wantPull(t, "startup after reopening", ans, []string{id(d2, "192.0.2.1"), id(d3, "192.0.2.3"), id(d4, "192.0.2.4")}, []string{})
	if !ans.Now.Equal(f.clock.Now()) {
		t.Errorf("answer time = %v, want the clock's %v", ans.Now, f.clock.Now())
	}

	// History counts from the correction for what was logged ahead: a day
	// later, d1 and its changes are pruned.
	f.clock.Advance(25 * time.Hour)
	wantPull(t, "A a day later", f.pull("A", false), []string{}, []string{id(d2, "192.0.2.1"), id(d3, "192.0.2.3"), id(d4, "192.0.2.4")})
	if _, err := f.store.Get(decCtx, d1.ID); !errors.Is(err, respond.ErrNotFound) {
		t.Errorf("Get(%d) a day after the correction = %v, want ErrNotFound (pruned)", d1.ID, err)
	}
}
