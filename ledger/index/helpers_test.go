package index_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

const testOrigin = "example.com/accessledger/index-test"

var bg = context.Background()

// genLeaf is one generated leaf and what a brute-force scan knows of it.
type genLeaf struct {
	data   []byte
	kind   string       // "" for a leaf that is not JSON
	ev     *event.Event // for events
	recv   time.Time    // for events: when received
	hasT   bool
	t      time.Time // event time (alerts have one too)
	actor  string
	ipAddr netip.Addr
	by     string // for events: submitted_by, "" for none (as written before it was recorded)
}

// genTime0 is the start of the generated events' times.
var genTime0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// Value pools, small enough that every filter has matches.
var (
	genServices   = []string{"sso", "billing", "crm", "vpn", "mail", "wiki", "git", "hr"}
	genActions    = []string{"login", "logout", "read", "create", "update", "delete", "grant", "revoke"}
	genCategories = []string{event.CategoryAuthentication, event.CategoryAuthorization, event.CategoryDataAccess, event.CategoryAdmin, event.CategorySystem}
	genOutcomes   = []string{event.OutcomeSuccess, event.OutcomeFailure, event.OutcomeUnknown}
	genResTypes   = []string{"document", "invoice", "repo", "user"}
	genTenants    = []string{"acme", "globex", "initech"}
	// genSubmitters are the API keys that submit events; "" is an event
	// without submitted_by, as written before it was recorded.
	genSubmitters = []string{"", "billing-svc", "crm.sync@eu-1", "sso"}
)

// genActor returns actor number i; a few have names that need escaping
// in JSON.
func genActor(i int) string {
	switch i {
	case 0:
		return `al"ice\`
	case 1:
		return "zoë"
	case 2:
		return "bob/\u2028x"
	}
	return fmt.Sprintf("user-%03d", i)
}

// genIP returns a random address from a few IPv4 /16s and IPv6 /48s, with
// repeats.
func genIP(r *mrand.Rand) netip.Addr {
	switch r.IntN(10) {
	case 0, 1, 2:
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(256))})
	case 3, 4:
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
	case 5:
		return netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
	case 6, 7:
		var b [16]byte
		copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(r.IntN(3))})
		b[7] = byte(r.IntN(4))
		b[15] = byte(r.IntN(256))
		return netip.AddrFrom16(b)
	default:
		var b [16]byte
		b[0] = 0x2a
		for i := 1; i < 16; i++ {
			b[i] = byte(r.IntN(256))
		}
		return netip.AddrFrom16(b)
	}
}

// generate returns n leaves: mostly events, some alerts, a few that are
// not JSON.
func generate(n int, seed uint64) []genLeaf {
	r := mrand.New(mrand.NewPCG(seed, 1))
	recv := genTime0.Add(30 * 24 * time.Hour)
	out := make([]genLeaf, n)
	for i := range out {
		// Ten days of event times, mostly increasing, some out of order.
		t := genTime0.Add(time.Duration(int64(i) * int64(10*24*time.Hour) / int64(n)))
		if r.IntN(5) == 0 {
			t = genTime0.Add(time.Duration(r.Int64N(int64(10 * 24 * time.Hour))))
		}
		t = t.Add(time.Duration(r.IntN(1e9)))
		switch {
		case i%997 == 500:
			out[i] = genLeaf{data: []byte(fmt.Sprintf("not json %d", i))}
			continue
		case i%101 == 7:
			body := fmt.Sprintf(`{"dedup_key":"k%d","time":%q,"rule":{"id":"r1"}}`, i, t.UTC().Format(event.TimeFormat))
			data, _ := event.EncodeLeaf(event.KindAlert, recv, []byte(body))
			out[i] = genLeaf{data: data, kind: "alert", hasT: true, t: t}
			continue
		}
		ev := &event.Event{
			ID:       fmt.Sprintf("e%d", i),
			Time:     t.UTC(),
			Service:  genServices[r.IntN(len(genServices))],
			Actor:    event.Actor{ID: genActor(r.IntN(300)), Type: event.ActorUser},
			Source:   event.Source{IP: genIP(r)},
			Action:   genActions[r.IntN(len(genActions))],
			Category: genCategories[r.IntN(len(genCategories))],
			Outcome:  genOutcomes[r.IntN(len(genOutcomes))],
		}
		if r.IntN(3) > 0 {
			ev.Resource = &event.Resource{Type: genResTypes[r.IntN(len(genResTypes))]}
			if r.IntN(2) == 0 {
				ev.Resource.ID = fmt.Sprintf("res-%d", r.IntN(50))
			}
		}
		if r.IntN(2) == 0 {
			ev.Tenant = genTenants[r.IntN(len(genTenants))]
		}
		by := genSubmitters[i%len(genSubmitters)]
		_, data, _, err := event.AppendSubmittedEventLeaf(nil, recv, by, ev)
		if err != nil {
			panic(err)
		}
		out[i] = genLeaf{data: data, kind: "event", ev: ev, recv: recv, hasT: true, t: ev.Time, actor: ev.Actor.ID, ipAddr: ev.Source.IP, by: by}
	}
	return out
}

// matches is the brute-force answer to whether leaf g matches q.
func matches(g genLeaf, q index.Query) bool {
	in := func(vs []string, v string) bool { return len(vs) == 0 || (v != "" && slices.Contains(vs, v)) }
	var ev event.Event
	if g.ev != nil {
		ev = *g.ev
	}
	var rt, rid string
	if ev.Resource != nil {
		rt, rid = ev.Resource.Type, ev.Resource.ID
	}
	if !in(q.Kind, g.kind) || !in(q.Service, ev.Service) || !in(q.Actor, ev.Actor.ID) ||
		!in(q.Action, ev.Action) || !in(q.Category, ev.Category) || !in(q.Outcome, ev.Outcome) ||
		!in(q.ResourceType, rt) || !in(q.ResourceID, rid) || !in(q.Tenant, ev.Tenant) || !in(q.SubmittedBy, g.by) {
		return false
	}
	if len(q.SourceIP) > 0 {
		if !g.ipAddr.IsValid() {
			return false
		}
		if !slices.ContainsFunc(q.SourceIP, func(p netip.Prefix) bool {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			return p.Masked().Contains(g.ipAddr)
		}) {
			return false
		}
	}
	hasSince, hasUntil := q.HasSince || !q.Since.IsZero(), q.HasUntil || !q.Until.IsZero()
	if hasSince || hasUntil {
		if !g.hasT {
			return false
		}
		if hasSince && g.t.Before(q.Since) {
			return false
		}
		if hasUntil && !g.t.Before(q.Until) {
			return false
		}
	}
	return true
}

// bruteForce returns the indexes below size of the leaves matching q.
func bruteForce(leaves []genLeaf, size uint64, q index.Query) []uint64 {
	var out []uint64
	for i := uint64(0); i < size; i++ {
		if matches(leaves[i], q) {
			out = append(out, i)
		}
	}
	return out
}

// newLedger creates a ledger in a temporary directory, closed when the
// test ends.
func newLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner(testOrigin, sv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Create(bg, ledger.Config{
		Dir: t.TempDir(), Origin: testOrigin, Signer: s, CheckpointInterval: time.Hour,
		BadgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(16 << 20).WithBlockCacheSize(16 << 20).WithIndexCacheSize(4 << 20)
		},
	})
	if err != nil {
		t.Fatalf("ledger.Create() = %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(bg); err != nil {
			t.Errorf("Ledger.Close() = %v", err)
		}
	})
	return l
}

// appendAll appends leaves in order, in batches, events with what they
// were encoded from, as the API appends them: the index reads that for the
// entries the log still holds in memory, the bytes for the others.
func appendAll(t testing.TB, l *ledger.Ledger, leaves []genLeaf) {
	t.Helper()
	for i := 0; i < len(leaves); i += 2000 {
		batch := make([]ledger.Entry, 0, 2000)
		for _, g := range leaves[i:min(i+2000, len(leaves))] {
			e := ledger.Entry{Data: g.data}
			if g.ev != nil {
				e.Decoded = &event.Decoded{ReceivedAt: g.recv, SubmittedBy: g.by, Event: g.ev}
			}
			batch = append(batch, e)
		}
		if _, err := l.Append(bg, batch...); err != nil {
			t.Fatalf("Ledger.Append() = %v", err)
		}
	}
}

// runningIndex is an index with its follower running.
type runningIndex struct {
	*index.Index
	dir  string
	stop func()
}

// startIndex opens the index in dir over l and runs its follower until
// the test ends (or stop is called).
func startIndex(t testing.TB, l index.Log, dir string) *runningIndex {
	t.Helper()
	x, err := index.Open(bg, index.Config{Dir: dir, Log: l, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		BadgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20)
		}})
	if err != nil {
		t.Fatalf("index.Open() = %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Index.Run() = %v", err)
		}
		if err := x.Close(); err != nil {
			t.Errorf("Index.Close() = %v", err)
		}
	}
	t.Cleanup(stop)
	return &runningIndex{Index: x, dir: dir, stop: stop}
}

// waitIndexed waits until the index reaches size.
func waitIndexed(t testing.TB, x *index.Index, size uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bg, 60*time.Second)
	defer cancel()
	if err := x.Wait(ctx, size); err != nil {
		t.Fatalf("Index.Wait(%d) = %v (indexed size %d)", size, err, x.Size())
	}
}

// search returns every match of q in [from, to), in the given order.
func search(t testing.TB, x *index.Index, q index.Query, from, to uint64, desc bool, limit int) ([]uint64, uint64) {
	t.Helper()
	var got []uint64
	size, err := x.Search(bg, q, from, to, desc, func(i uint64) bool {
		got = append(got, i)
		return limit <= 0 || len(got) < limit
	})
	if err != nil {
		t.Fatalf("Index.Search(%+v) = %v", q, err)
	}
	return got, size
}

// testWriter sends log output to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
