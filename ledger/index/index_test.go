package index_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// numLeaves is the size of the generated log the query tests check
// against a brute-force scan: more than 50,000 entries, and more than a
// chunk (65,536), so that every query reads a written chunk (from its
// segments) and the open one (from memory), and pages cross chunks and
// many bundles.
const numLeaves = 70_000

func mustPrefix(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, mustPrefix(s))
	}
	return out
}

// at is a time relative to the generated events' start.
func at(d time.Duration) time.Time { return genTime0.Add(d) }

const (
	minute = time.Minute
	hour   = time.Hour
	day    = 24 * time.Hour
)

// queryCases are every filter alone, OR within fields, CIDR prefixes of
// many lengths for both families, time ranges cut at every granularity,
// and combinations.
func queryCases(leaves []genLeaf) []struct {
	name string
	q    index.Query
} {
	type qc = struct {
		name string
		q    index.Query
	}
	cases := []qc{
		{"None", index.Query{}},
		{"KindEvent", index.Query{Kind: []string{"event"}}},
		{"KindAlert", index.Query{Kind: []string{"alert"}}},
		{"KindEventOrAlert", index.Query{Kind: []string{"event", "alert"}}},
		{"KindUnknown", index.Query{Kind: []string{"response"}}},
		{"Service", index.Query{Service: []string{"vpn"}}},
		{"ServiceOr", index.Query{Service: []string{"vpn", "git", "nonexistent"}}},
		{"Actor", index.Query{Actor: []string{"user-042"}}},
		{"ActorEscaped", index.Query{Actor: []string{`al"ice\`}}},
		{"ActorUnicode", index.Query{Actor: []string{"zoë", "bob/\u2028x"}}},
		{"ActorNone", index.Query{Actor: []string{"nobody"}}},
		{"Action", index.Query{Action: []string{"login"}}},
		{"ActionOr", index.Query{Action: []string{"login", "logout"}}},
		{"Category", index.Query{Category: []string{"data_access"}}},
		{"Outcome", index.Query{Outcome: []string{"failure"}}},
		{"ResourceType", index.Query{ResourceType: []string{"invoice"}}},
		{"ResourceID", index.Query{ResourceID: []string{"res-7"}}},
		{"ResourceTypeAndID", index.Query{ResourceType: []string{"repo"}, ResourceID: []string{"res-7", "res-8"}}},
		{"Tenant", index.Query{Tenant: []string{"globex"}}},
		{"SubmittedBy", index.Query{SubmittedBy: []string{"billing-svc"}}},
		{"SubmittedByOr", index.Query{SubmittedBy: []string{"sso", "crm.sync@eu-1", "revoked-svc"}}},
		{"SubmittedByNone", index.Query{SubmittedBy: []string{"revoked-svc"}}},
		{"SubmittedByAndKind", index.Query{SubmittedBy: []string{"billing-svc"}, Kind: []string{"event", "alert"}, Action: []string{"login"}}},
		{"SourceIPExact4", index.Query{SourceIP: prefixes(leaves[3].ipAddr.String())}},
		{"SourceIPExact6", index.Query{SourceIP: prefixes("2001:db8:0:1:0:3::17", leaves[11].ipAddr.String())}},
		{"SourceIPMapped", index.Query{SourceIP: prefixes("::ffff:203.0.113.9/128")}},
		{"SourceIPMappedPrefix", index.Query{SourceIP: prefixes("::ffff:203.0.113.0/120")}},
	}
	for _, p := range []string{
		"0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/7", "10.0.0.0/14", "10.1.0.0/16", "10.1.128.0/17",
		"203.0.113.0/24", "203.0.113.0/25", "203.0.113.64/26", "203.0.113.200/29", "203.0.113.7/32",
		"10.2.0.0/20", "10.3.7.0/24", "100.0.0.0/6",
		"::/0", "2001:db8::/32", "2001:db8::/31", "2001:db8::/40", "2001:db8:0:1::/64", "2001:db8::/48",
		"2001:db8:0:2::/56", "2001:db8:0:1:0:3::/100", "2001:db8:0:3::17/128", "2a00::/8", "2a80::/9",
	} {
		cases = append(cases, qc{"CIDR" + p, index.Query{SourceIP: prefixes(p)}})
	}
	cases = append(cases,
		qc{"CIDRUnion", index.Query{SourceIP: prefixes("10.0.0.0/16", "2001:db8::/48", "203.0.113.5")}},
		qc{"CIDROverlapping", index.Query{SourceIP: prefixes("10.0.0.0/8", "10.1.0.0/16")}},
		qc{"SinceAligned", index.Query{Since: at(3 * day)}},
		qc{"UntilAligned", index.Query{Until: at(2 * day)}},
		qc{"Since", index.Query{Since: at(7*day + 3*hour + 17*minute + 12345678901)}},
		qc{"Until", index.Query{Until: at(1*day + 5*hour + 59*minute + 999999999)}},
		qc{"HourWindow", index.Query{Since: at(4*day + 10*hour), Until: at(4*day + 11*hour)}},
		qc{"UnalignedHour", index.Query{Since: at(4*day + 10*hour + 90*time.Second + 7), Until: at(4*day + 11*hour + 30*time.Second)}},
		qc{"WithinOneMinute", index.Query{Since: at(2*day + 10*minute + 5*time.Second), Until: at(2*day + 10*minute + 40*time.Second)}},
		qc{"SameMinuteBoundary", index.Query{Since: at(2*day + 10*minute + 5*time.Second), Until: at(2*day + 11*minute)}},
		qc{"ManyDaysUnaligned", index.Query{Since: at(1*day + 23*hour + 59*minute + 30*time.Second), Until: at(8*day + 1*minute + 1)}},
		qc{"Empty", index.Query{Since: at(5 * day), Until: at(5 * day)}},
		qc{"Reversed", index.Query{Since: at(5 * day), Until: at(4 * day)}},
		qc{"BeforeEverything", index.Query{Until: at(-day)}},
		qc{"FailedLoginsInHour", index.Query{Action: []string{"login"}, Outcome: []string{"failure"}, Since: at(6 * day), Until: at(6*day + hour)}},
		qc{"ActorAndCIDR", index.Query{Actor: []string{"user-042", "user-043"}, SourceIP: prefixes("10.0.0.0/8")}},
		qc{"ServiceTenantOutcome", index.Query{Service: []string{"crm"}, Tenant: []string{"acme"}, Outcome: []string{"success", "unknown"}}},
		qc{"KindAndTime", index.Query{Kind: []string{"alert"}, Since: at(2 * day), Until: at(3*day + 7*minute + 3)}},
		qc{"EverythingAtOnce", index.Query{
			Kind: []string{"event"}, Service: []string{"sso", "vpn", "git", "crm"}, Action: []string{"login", "read", "update"},
			Category: []string{"authentication", "data_access", "admin"}, Outcome: []string{"failure", "success"},
			ResourceType: []string{"document", "repo", "invoice"}, Tenant: []string{"acme", "globex"},
			SourceIP: prefixes("10.0.0.0/8", "2001:db8::/32"), Since: at(1 * day), Until: at(9 * day)}},
	)
	// Random combinations of two to four fields.
	r := mrand.New(mrand.NewPCG(7, 7))
	for i := range 40 {
		var q index.Query
		for _, k := range r.Perm(8)[:2+r.IntN(3)] {
			switch k {
			case 0:
				q.Service = []string{genServices[r.IntN(len(genServices))]}
			case 1:
				q.Actor = []string{genActor(r.IntN(300)), genActor(r.IntN(300))}
			case 2:
				q.Action = []string{genActions[r.IntN(len(genActions))]}
			case 3:
				q.Outcome = []string{genOutcomes[r.IntN(len(genOutcomes))]}
			case 4:
				q.SourceIP = prefixes([]string{"10.0.0.0/9", "203.0.113.128/25", "2001:db8:0:1::/64", "0.0.0.0/0", "::/0"}[r.IntN(5)])
			case 5:
				s := at(time.Duration(r.Int64N(int64(10 * day))))
				q.Since, q.Until = s, s.Add(time.Duration(r.Int64N(int64(2*day))))
			case 6:
				q.Tenant = []string{genTenants[r.IntN(len(genTenants))]}
			case 7:
				q.Category = []string{genCategories[r.IntN(len(genCategories))]}
			}
		}
		cases = append(cases, qc{fmt.Sprintf("Random%02d", i), q})
	}
	return cases
}

// TestSearchMatchesBruteForce checks every query, in both orders and in
// pages of several sizes, and its count, against a scan of all entries.
func TestSearchMatchesBruteForce(t *testing.T) {
	leaves := generate(numLeaves, 1)
	l := newLedger(t)
	appendAll(t, l, leaves)
	x := startIndex(t, l, t.TempDir())
	waitIndexed(t, x.Index, numLeaves)

	for _, tc := range queryCases(leaves) {
		t.Run(tc.name, func(t *testing.T) {
			want := bruteForce(leaves, numLeaves, tc.q)
			got, size := search(t, x.Index, tc.q, 0, ^uint64(0), false, 0)
			if size != numLeaves {
				t.Fatalf("Search() indexed size = %d, want %d", size, numLeaves)
			}
			checkSame(t, "Search(asc)", got, want)
			gotDesc, _ := search(t, x.Index, tc.q, 0, ^uint64(0), true, 0)
			wantDesc := slices.Clone(want)
			slices.Reverse(wantDesc)
			checkSame(t, "Search(desc)", gotDesc, wantDesc)
			n, _, err := x.Count(bg, tc.q)
			if err != nil || n != uint64(len(want)) {
				t.Errorf("Count() = %d, %v, want %d", n, err, len(want))
			}
			// Pages: each starts after the last index of the previous.
			for _, page := range []int{1, 97, 5000} {
				if len(want) > 300 && page == 1 {
					continue
				}
				checkSame(t, fmt.Sprintf("pages of %d (asc)", page), pages(t, x.Index, tc.q, false, page, numLeaves), want)
				checkSame(t, fmt.Sprintf("pages of %d (desc)", page), pages(t, x.Index, tc.q, true, page, numLeaves), wantDesc)
			}
			// A window of the log, across the chunk boundary.
			from, to := uint64(12345), uint64(68000)
			var wantWin []uint64
			for _, i := range want {
				if i >= from && i < to {
					wantWin = append(wantWin, i)
				}
			}
			gotWin, _ := search(t, x.Index, tc.q, from, to, false, 0)
			checkSame(t, "Search(window)", gotWin, wantWin)
		})
	}

	// Stopped, the index writes its open chunk; reopened without Run,
	// queries read everything from storage.
	x.stop()
	y, err := index.Open(bg, index.Config{Dir: x.dir, Log: l})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if y.Size() != numLeaves {
		t.Fatalf("Size() after reopening = %d, want %d", y.Size(), numLeaves)
	}
	for _, tc := range queryCases(leaves) {
		got, _ := search(t, y, tc.q, 0, ^uint64(0), false, 0)
		checkSame(t, tc.name+" (from storage)", got, bruteForce(leaves, numLeaves, tc.q))
	}
}

// pages collects every match by pages of n, resuming each page after the
// previous one's last index, as the API's cursor does.
func pages(t *testing.T, x *index.Index, q index.Query, desc bool, n int, size uint64) []uint64 {
	var all []uint64
	from, to := uint64(0), size
	for {
		got, _ := search(t, x, q, from, to, desc, n)
		all = append(all, got...)
		if len(got) < n {
			return all
		}
		if desc {
			to = got[len(got)-1]
		} else {
			from = got[len(got)-1] + 1
		}
	}
}

func checkSame(t *testing.T, what string, got, want []uint64) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	first := 0
	for first < len(got) && first < len(want) && got[first] == want[first] {
		first++
	}
	show := func(s []uint64) []uint64 { return s[first:min(len(s), first+5)] }
	t.Errorf("%s: %d results, want %d; first difference at result %d: got %v, want %v", what, len(got), len(want), first, show(got), show(want))
}

func TestTopMatchesBruteForce(t *testing.T) {
	leaves := generate(20_000, 2)
	l := newLedger(t)
	appendAll(t, l, leaves)
	x := startIndex(t, l, t.TempDir())
	waitIndexed(t, x.Index, uint64(len(leaves)))

	value := func(g genLeaf, f string) string {
		if g.ev == nil {
			if f == "kind" {
				return g.kind
			}
			return ""
		}
		switch f {
		case "source.ip":
			return g.ev.Source.IP.String()
		case "actor.id":
			return g.ev.Actor.ID
		case "service":
			return g.ev.Service
		case "action":
			return g.ev.Action
		case "tenant":
			return g.ev.Tenant
		case "submitted_by":
			return g.by
		case "kind":
			return g.kind
		case "resource.id":
			if g.ev.Resource != nil {
				return g.ev.Resource.ID
			}
		}
		return ""
	}
	for _, f := range []string{"source.ip", "actor.id", "service", "action", "tenant", "kind", "resource.id", "submitted_by"} {
		for _, q := range []index.Query{{}, {Outcome: []string{"failure"}, Since: at(2 * day), Until: at(6 * day)}, {SourceIP: prefixes("10.0.0.0/8")}} {
			t.Run(fmt.Sprintf("%s/%+v", f, q), func(t *testing.T) {
				counts := map[string]uint64{}
				for _, g := range leaves {
					if v := value(g, f); v != "" && matches(g, q) {
						counts[v]++
					}
				}
				var want []index.ValueCount
				for v, n := range counts {
					want = append(want, index.ValueCount{Value: v, Count: n})
				}
				sort.Slice(want, func(i, j int) bool {
					if want[i].Count != want[j].Count {
						return want[i].Count > want[j].Count
					}
					return want[i].Value < want[j].Value
				})
				want = want[:min(10, len(want))]
				got, _, err := x.Top(bg, q, f, 10)
				if err != nil || !slices.Equal(got, want) {
					t.Errorf("Top(%s) = %v, %v, want %v", f, got, err, want)
				}
			})
		}
	}
	if _, _, err := x.Top(bg, index.Query{}, "reason", 10); !errors.Is(err, index.ErrUnknownField) {
		t.Errorf("Top(reason) = %v, want ErrUnknownField", err)
	}
}

// TestSearchWhileAppending pages through queries while the log grows past
// a chunk boundary: every page equals the brute-force answer over the
// entries the index had reached, and the pages together equal it over the
// final size.
func TestSearchWhileAppending(t *testing.T) {
	const n = 80_000 // crosses the first chunk boundary (65,536)
	leaves := generate(n, 3)
	l := newLedger(t)
	appendAll(t, l, leaves[:5000])
	x := startIndex(t, l, t.TempDir())

	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 5000; i < n; i += 500 {
			appendAll(t, l, leaves[i:min(i+500, n)])
			time.Sleep(time.Millisecond)
		}
	}()
	qs := []index.Query{
		{Action: []string{"login"}, Outcome: []string{"failure"}},
		{SourceIP: prefixes("10.0.0.0/8", "2001:db8::/48")},
		{Actor: []string{"user-007", "user-008", "user-009"}},
		{Since: at(2 * day), Until: at(7 * day), Service: []string{"vpn"}},
	}
	rounds, growing := 0, true
	sizes := map[uint64]int{}
	for round := 0; growing && !t.Failed(); round++ {
		select {
		case <-appended:
			growing = false
		default:
		}
		rounds++
		time.Sleep(2 * time.Millisecond) // let the appender and the follower run
		q := qs[round%len(qs)]
		var all []uint64
		from := uint64(0)
		for {
			var got []uint64
			size, err := x.Search(bg, q, from, ^uint64(0), false, func(i uint64) bool {
				got = append(got, i)
				return len(got) < 250
			})
			if err != nil {
				t.Fatalf("Search() = %v", err)
			}
			sizes[size]++
			// This page is exactly the first 250 matches in [from, size).
			var want []uint64
			for _, i := range bruteForce(leaves, size, q) {
				if i >= from && len(want) < 250 {
					want = append(want, i)
				}
			}
			checkSame(t, fmt.Sprintf("round %d page from %d (indexed size %d)", round, from, size), got, want)
			all = append(all, got...)
			if len(got) < 250 {
				checkSame(t, fmt.Sprintf("round %d all pages (indexed size %d)", round, size), all, bruteForce(leaves, size, q))
				break
			}
			from = got[len(got)-1] + 1
		}
	}
	t.Logf("%d rounds of paged queries while the log grew, at %d indexed sizes", rounds, len(sizes))
	waitIndexed(t, x.Index, n)
	for _, q := range qs {
		got, _ := search(t, x.Index, q, 0, ^uint64(0), false, 0)
		checkSame(t, "after appends", got, bruteForce(leaves, n, q))
	}
}

// TestCatchUpAfterRestart stops the follower part-way (and then starts a
// fresh index over the same directory), appends more, and checks that the
// index reaches the log and answers as a brute-force scan does.
func TestCatchUpAfterRestart(t *testing.T) {
	leaves := generate(70_000, 4)
	l := newLedger(t)
	dir := t.TempDir()
	appendAll(t, l, leaves[:30_000])
	x := startIndex(t, l, dir)
	waitIndexed(t, x.Index, 30_000)
	x.stop()

	appendAll(t, l, leaves[30_000:])
	x = startIndex(t, l, dir)
	if got := x.Size(); got != 30_000 {
		t.Errorf("Size() after reopening = %d, want 30000", got)
	}
	waitIndexed(t, x.Index, uint64(len(leaves)))
	for _, tc := range queryCases(leaves)[:30] {
		got, _ := search(t, x.Index, tc.q, 0, ^uint64(0), false, 0)
		checkSame(t, tc.name, got, bruteForce(leaves, uint64(len(leaves)), tc.q))
	}
}

// TestRebuildsIndexOfAnotherLog opens an index written for one log over
// another: it is dropped and rebuilt.
func TestRebuildsIndexOfAnotherLog(t *testing.T) {
	dir := t.TempDir()
	a, b := generate(3000, 5), generate(2000, 6)
	la, lb := newLedger(t), newLedger(t)
	appendAll(t, la, a)
	appendAll(t, lb, b)
	x := startIndex(t, la, dir)
	waitIndexed(t, x.Index, uint64(len(a)))
	x.stop()

	x = startIndex(t, lb, dir)
	waitIndexed(t, x.Index, uint64(len(b)))
	if got := x.Size(); got != uint64(len(b)) {
		t.Errorf("Size() = %d, want %d", got, len(b))
	}
	q := index.Query{Action: []string{"login"}}
	got, _ := search(t, x.Index, q, 0, ^uint64(0), false, 0)
	checkSame(t, "rebuilt", got, bruteForce(b, uint64(len(b)), q))
}

// TestBehindOnlyOnceCaughtUp: an index catching up (after a restart or a
// rebuild) never reports itself behind; one that has caught up and then
// lags does.
func TestBehindOnlyOnceCaughtUp(t *testing.T) {
	leaves := generate(5000, 8)
	l := newLedger(t)
	appendAll(t, l, leaves[:4000])
	x, err := index.Open(bg, index.Config{Dir: t.TempDir(), Log: l, MaxLag: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Behind() {
		t.Errorf("Behind() before Run = true, want false: catching up never holds appends back")
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	waitIndexed(t, x, 4000)
	if x.Behind() {
		t.Errorf("Behind() caught up = true")
	}
	cancel()
	<-done
	// Stopped: the log grows, but a stopped index holds nothing back.
	appendAll(t, l, leaves[4000:])
	if x.Behind() {
		t.Errorf("Behind() of a stopped index = true, want false")
	}
}

// TestIndexesWhatTheLogHolds: for the entries the log still holds in
// memory the index reads what they were appended with (Entry.Decoded), not
// their bytes, and finds them as it finds the others. An entry appended
// with a Decoded that says other than its bytes shows which one was read.
func TestIndexesWhatTheLogHolds(t *testing.T) {
	leaves := generate(3000, 7)
	l := newLedger(t)
	appendAll(t, l, leaves)
	ev := *leaves[1].ev
	ev.Actor.ID = "only-in-decoded"
	if _, err := l.Append(bg, ledger.Entry{Data: leaves[1].data, Decoded: &event.Decoded{ReceivedAt: leaves[1].recv, Event: &ev}}); err != nil {
		t.Fatal(err)
	}
	x := startIndex(t, l, t.TempDir())
	waitIndexed(t, x.Index, 3001)
	if got, _ := search(t, x.Index, index.Query{Actor: []string{"only-in-decoded"}}, 0, ^uint64(0), false, 0); !slices.Equal(got, []uint64{3000}) {
		t.Fatalf("Search(actor only in Decoded) = %v, want [3000]: the index did not read what the entry was appended with", got)
	}
	for _, tc := range queryCases(leaves) {
		got, _ := search(t, x.Index, tc.q, 0, 3000, false, 0)
		checkSame(t, tc.name, got, bruteForce(leaves, 3000, tc.q))
	}
}

// TestRebuildsIndexOfVersion2: an index written by version 2 (meta under
// m, event times under t) is dropped and rebuilt from the log, and none
// of its keys is left.
func TestRebuildsIndexOfVersion2(t *testing.T) {
	dir := t.TempDir()
	leaves := generate(3000, 9)
	l := newLedger(t)
	appendAll(t, l, leaves)
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(txn *badger.Txn) error {
		meta := fmt.Sprintf(`{"version":2,"origin":%q,"size":3000}`, l.Origin())
		if err := txn.Set([]byte("m"), []byte(meta)); err != nil {
			return err
		}
		return txn.Set([]byte("t\x00\x00\x00\x00\x00\x00\x00\x00"), make([]byte, 8*4096))
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	x := startIndex(t, l, dir)
	waitIndexed(t, x.Index, uint64(len(leaves)))
	q := index.Query{Action: []string{"login"}}
	got, _ := search(t, x.Index, q, 0, ^uint64(0), false, 0)
	checkSame(t, "rebuilt", got, bruteForce(leaves, uint64(len(leaves)), q))
	x.stop()

	db, err = badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(txn *badger.Txn) error {
		for _, k := range []string{"m", "t\x00\x00\x00\x00\x00\x00\x00\x00"} {
			if _, err := txn.Get([]byte(k)); err == nil {
				t.Errorf("key %q of the version-2 index left after the rebuild", k)
			}
		}
		return nil
	})
}

// TestIdleFollowerWakesOnCommit: once caught up, the follower waits for
// the ledger's next commit instead of polling (an idle server used to
// wake it every 2 ms), and a commit still wakes it at once. With a poll
// interval of an hour, only the commit signal can index the second
// append within the test's bound.
func TestIdleFollowerWakesOnCommit(t *testing.T) {
	leaves := generate(20, 11)
	l := newLedger(t)
	appendAll(t, l, leaves[:10])
	x, err := index.Open(bg, index.Config{Dir: t.TempDir(), Log: l, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	waitIndexed(t, x, 10)
	time.Sleep(50 * time.Millisecond) // let the follower go to sleep
	appendAll(t, l, leaves[10:])
	wctx, wcancel := context.WithTimeout(bg, 10*time.Second)
	defer wcancel()
	if err := x.Wait(wctx, 20); err != nil {
		t.Errorf("Index.Wait(20) after an append to an idle index = %v (indexed %d): the follower did not wake on the commit", err, x.Size())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Index.Run() = %v", err)
	}
}

// TestZeroTimeBounds: the zero time (0001-01-01T00:00:00Z, or the same
// instant at an offset) was taken for "no bound", so until that instant
// matched every leaf instead of none. HasSince and HasUntil say a bound
// was given; a zero time without them still does not bound, as before.
func TestZeroTimeBounds(t *testing.T) {
	const n = 3000 // "not json" leaves at 500 and 1497 and 2494 have no time
	leaves := generate(n, 3)
	l := newLedger(t)
	appendAll(t, l, leaves)
	x := startIndex(t, l, t.TempDir())
	waitIndexed(t, x.Index, n)
	zero := time.Time{}
	zeroAtOffset := time.Date(1, 1, 1, 1, 0, 0, 0, time.FixedZone("+01:00", 3600)) // the same instant
	if !zeroAtOffset.IsZero() {
		t.Fatal("0001-01-01T01:00:00+01:00 is not the zero instant")
	}
	for _, tc := range []struct {
		name string
		q    index.Query
		want int // -1: every leaf with a time
	}{
		{"UntilZero", index.Query{Until: zero, HasUntil: true}, 0},
		{"UntilZeroAtOffset", index.Query{Until: zeroAtOffset, HasUntil: true}, 0},
		{"UntilZeroAndService", index.Query{Service: []string{"vpn"}, Until: zero, HasUntil: true}, 0},
		{"SinceZero", index.Query{Since: zero, HasSince: true}, -1},
		{"SinceZeroUntilLater", index.Query{Since: zeroAtOffset, HasSince: true, Until: at(5 * day)}, -1},
		{"ZeroNotGiven", index.Query{Until: zero}, n},
	} {
		want := bruteForce(leaves, n, tc.q)
		got, _ := search(t, x.Index, tc.q, 0, ^uint64(0), false, 0)
		checkSame(t, tc.name, got, want)
		switch {
		case tc.want >= 0 && len(got) != tc.want:
			t.Errorf("%s: %d matches, want %d", tc.name, len(got), tc.want)
		case tc.want < 0 && (len(got) == 0 || len(got) == n):
			t.Errorf("%s: %d matches of %d leaves, want those with a time", tc.name, len(got), n)
		}
		if c, _, err := x.Count(bg, tc.q); err != nil || c != uint64(len(want)) {
			t.Errorf("%s: Count() = %d, %v, want %d", tc.name, c, err, len(want))
		}
	}
}
