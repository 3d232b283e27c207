package detect

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// benchEvents returns n synthetic events of a busy organisation: users
// logging in (a few failing), reading data, a few admins, from home and
// office addresses with geo and ASN, one every 5ms of event time.
func benchEvents(n, users int) []*event.Event {
	rng := rand.New(rand.NewPCG(42, 42))
	start := time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)
	countries := []string{"FR", "DE", "US", "GB", "BR", "JP"}
	evs := make([]*event.Event, n)
	for i := range evs {
		u := rng.IntN(users)
		lat, lon := float64(u%90), float64(u%180)
		ev := &event.Event{
			Time:    start.Add(time.Duration(i) * 5 * time.Millisecond),
			Service: []string{"sso", "crm", "hr", "api"}[u%4],
			Actor:   event.Actor{ID: fmt.Sprintf("user%05d", u), Type: "user"},
			Source: event.Source{
				IP:        netip.AddrFrom4([4]byte{81, byte(u >> 8), byte(u), byte(rng.IntN(3))}),
				UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
				Geo:       &event.Geo{Country: countries[u%len(countries)], Lat: &lat, Lon: &lon},
				ASN:       uint32(3215 + u%50),
			},
		}
		switch r := rng.IntN(100); {
		case r < 20:
			ev.Action, ev.Category, ev.Outcome = "login", "authentication", "success"
		case r < 23:
			ev.Action, ev.Category, ev.Outcome, ev.Reason = "login", "authentication", "failure", "invalid_credentials"
		case r < 95:
			ev.Action, ev.Category, ev.Outcome = "read", "data_access", "success"
			ev.Resource = &event.Resource{Type: "customer_record", ID: fmt.Sprintf("c%d", rng.IntN(100000))}
		default:
			ev.Action, ev.Category, ev.Outcome = "update", "admin", "success"
			ev.Resource = &event.Resource{Type: "user", ID: fmt.Sprintf("user%05d", rng.IntN(users))}
		}
		evs[i] = ev
	}
	return evs
}

// BenchmarkDefaultPack measures Engine.Process over the whole default
// pack, events already decoded (one core: run with -cpu 1).
func BenchmarkDefaultPack(b *testing.B) { benchDefaultPack(b, 20_000) }

// BenchmarkDefaultPackBusyUsers is BenchmarkDefaultPack with 50 users,
// each of whom has hundreds of events in a baseline's hour.
func BenchmarkDefaultPackBusyUsers(b *testing.B) { benchDefaultPack(b, 50) }

func benchDefaultPack(b *testing.B, users int) {
	evs := benchEvents(200_000, users)
	e, err := LoadDefault(Config{})
	if err != nil {
		b.Fatal(err)
	}
	start := evs[0].Time
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev := evs[i%len(evs)]
		ev.Time = start.Add(time.Duration(i) * 5 * time.Millisecond)
		e.Process(&Record{Index: uint64(i), ReceivedAt: ev.Time, Event: ev})
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDefaultPackLeaves measures decoding canonical leaves and
// processing them through the whole default pack, as the detector does.
func BenchmarkDefaultPackLeaves(b *testing.B) {
	evs := benchEvents(100_000, 20_000)
	leaves := make([][]byte, len(evs))
	for i, ev := range evs {
		leaves[i], _ = event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
	}
	e, err := LoadDefault(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, err := DecodeLeaf(uint64(i), leaves[i%len(leaves)])
		if err != nil {
			b.Fatal(err)
		}
		// Keep event time moving forward across passes.
		shift := time.Duration(i/len(leaves)) * time.Duration(len(leaves)) * 5 * time.Millisecond
		r.Event.Time = r.Event.Time.Add(shift)
		r.ReceivedAt = r.Event.Time
		e.Process(r)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestStateMemory reports the heap held per active entity by the default
// pack (run with -v); it checks only that state stays bounded.
func TestStateMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	const users = 100_000
	e, err := LoadDefault(Config{})
	if err != nil {
		t.Fatal(err)
	}
	evs := benchEvents(400_000, users)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, ev := range evs {
		e.Process(&Record{Index: uint64(i), ReceivedAt: ev.Time, Event: ev})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := e.Stats()
	perUser := float64(after.HeapAlloc-before.HeapAlloc) / users
	t.Logf("groups %d over %d users: heap %.0f MiB, %.0f bytes per user (events excluded: %d events held by the test)",
		st.Groups, users, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), perUser, len(evs))
	runtime.KeepAlive(evs)
}

// BenchmarkStateGC measures what the default pack's state costs the
// garbage collector: it builds the state of a busy organisation (100,000
// users, a million events), then times full collections with it live.
// scan-B is the heap the collector must scan (objects holding pointers)
// and objects the objects it must mark, both for the state alone (not the
// events the benchmark generated, nor the compiled rules). Every collection of the server marks the detector's
// state once, whatever else it collects, and its cost goes with the
// objects more than with the bytes.
func BenchmarkStateGC(b *testing.B) {
	const users, passes = 100_000, 5
	evs := benchEvents(200_000, users)
	e, err := LoadDefault(Config{})
	if err != nil {
		b.Fatal(err)
	}
	base := heapCounts()
	start := evs[0].Time
	for i := range passes * len(evs) {
		ev := evs[i%len(evs)]
		ev.Time = start.Add(time.Duration(i) * 5 * time.Millisecond)
		e.Process(&Record{Index: uint64(i), ReceivedAt: ev.Time, Event: ev})
	}
	state := heapCounts()
	runtime.KeepAlive(evs)
	evs = nil
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(state.scan)-float64(base.scan), "scan-B")
	b.ReportMetric(float64(state.objects)-float64(base.objects), "objects")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "gc-ms")
	runtime.KeepAlive(e)
}

type heapCount struct{ scan, objects uint64 }

// heapCounts returns the scannable heap and the live objects after a full
// collection.
func heapCounts() heapCount {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}, {Name: "/gc/heap/objects:objects"}}
	metrics.Read(s)
	return heapCount{s[0].Value.Uint64(), s[1].Value.Uint64()}
}
