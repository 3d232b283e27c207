package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/tlog"
)

// ack is an event the server acknowledged (2xx) with an index.
type ack struct {
	index uint64
	leaf  tlog.Hash
	id    string          // the event's id, if it had one
	event json.RawMessage // the event as sent, kept for events with an id
	cycle int
}

// crashRecord collects what clients observed before a crash: every
// acknowledged event and every checkpoint served.
type crashRecord struct {
	t           *testing.T
	mu          sync.Mutex
	acks        map[uint64]ack
	ackOrder    []uint64              // indexes of acks, in the order acknowledged
	checkpoints map[uint64]checkpoint // by size
	// inflight are the events with an id of requests that got no answer
	// because the server died: they may or may not be in the log.
	inflight [][]json.RawMessage
	// inflightIDs are the ids of inflight, in the same order.
	inflightIDs [][]string
}

func (r *crashRecord) addAck(a ack) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.acks[a.index]; ok {
		r.t.Errorf("index %d acknowledged twice: for event %q (cycle %d) and %q (cycle %d)", a.index, old.id, old.cycle, a.id, a.cycle)
		return
	}
	r.acks[a.index] = a
	r.ackOrder = append(r.ackOrder, a.index)
}

// randomAck returns a random acknowledged event below size, if any.
func (r *crashRecord) randomAck(rng *rand.Rand, size uint64) (ack, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range 8 {
		if len(r.ackOrder) == 0 {
			return ack{}, false
		}
		if a := r.acks[r.ackOrder[rng.IntN(len(r.ackOrder))]]; a.index < size {
			return a, true
		}
	}
	return ack{}, false
}

func (r *crashRecord) addCheckpoint(cp checkpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.checkpoints[cp.size]; ok {
		if old.hash != cp.hash {
			r.t.Errorf("two checkpoints of size %d with different roots %x and %x", cp.size, old.hash, cp.hash)
		}
		return
	}
	r.checkpoints[cp.size] = cp
}

// TestCrashRecovery runs concurrent load against a real server, SIGKILLs it
// at a random moment, restarts it on the same data directory and checks
// that nothing acknowledged or signed was lost: every acknowledged entry is
// there with its leaf hash and provably included in the new checkpoint,
// which is consistent with every checkpoint served before the crash, and
// resubmitting an acknowledged id returns its original index. It repeats
// this several times on the same log.
func TestCrashRecovery(t *testing.T) {
	const (
		cycles  = 4
		workers = 8
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir := t.TempDir()
	s := startServer(t, dir)
	origin, vkey := s.origin, s.vkey
	rec := &crashRecord{t: t, acks: map[uint64]ack{}, checkpoints: map[uint64]checkpoint{}}
	rec.addCheckpoint(s.latestCheckpoint())
	var counter atomic.Int64
	var verified []uint64 // indexes already checked through /v1/entries

	for cycle := range cycles {
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for w := range workers {
			wr := rand.New(rand.NewPCG(seed, uint64(cycle*workers+w+1)))
			wg.Go(func() { loadWorker(ctx, t, s, rec, wr, cycle, w, &counter) })
		}
		pr := rand.New(rand.NewPCG(seed, uint64(1000+cycle)))
		wg.Go(func() { pollCheckpoints(ctx, t, s, rec, pr) })
		d := 300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))
		time.Sleep(d)
		s.kill()
		stop()
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}

		rec.mu.Lock()
		n, maxIdx := 0, int64(-1)
		for _, a := range rec.acks {
			if a.cycle == cycle {
				n++
			}
			maxIdx = max(maxIdx, int64(a.index))
		}
		maxCP := uint64(0)
		for size := range rec.checkpoints {
			maxCP = max(maxCP, size)
		}
		rec.mu.Unlock()
		t.Logf("cycle %d: killed after %s; %d events acknowledged in this cycle, max index %d, largest checkpoint %d",
			cycle, d.Round(time.Millisecond), n, maxIdx, maxCP)

		start := time.Now()
		s = startServer(t, dir)
		t.Logf("cycle %d: restarted in %s", cycle, time.Since(start).Round(time.Millisecond))
		if s.origin != origin || s.vkey != vkey {
			t.Fatalf("after restart the log is %q with key %q, want %q with %q", s.origin, s.vkey, origin, vkey)
		}
		verified = verifyAfterCrash(t, s, rec, rng, cycle, verified)
	}

	// The log survived the crashes; it must also still stop cleanly.
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Errorf("after the crash cycles, SIGTERM: exit code %d, want 0\nstderr:\n%s", code, s.stderr)
	}
}

// loadWorker posts batches of 1 to 50 events, some with ids, until ctx
// ends, recording every acknowledged index.
func loadWorker(ctx context.Context, t *testing.T, s *server, rec *crashRecord, r *rand.Rand, cycle, w int, counter *atomic.Int64) {
	for seq := 0; ctx.Err() == nil; seq++ {
		n := 1 + r.IntN(50)
		events := make([]json.RawMessage, n)
		ids := make([]string, n)
		for i := range events {
			if r.IntN(3) == 0 {
				ids[i] = fmt.Sprintf("c%d-w%d-%d-%d", cycle, w, seq, i)
			}
			events[i] = testEvent(ids[i], int(counter.Add(1)))
		}
		status, results, body, err := s.postEvents(ctx, "", events)
		if err != nil {
			// The server was killed mid-request, or is gone. A client
			// would retry the events that have an id.
			var retry []json.RawMessage
			var retryIDs []string
			for i, id := range ids {
				if id != "" {
					retry = append(retry, events[i])
					retryIDs = append(retryIDs, id)
				}
			}
			if len(retry) > 0 {
				rec.mu.Lock()
				rec.inflight = append(rec.inflight, retry)
				rec.inflightIDs = append(rec.inflightIDs, retryIDs)
				rec.mu.Unlock()
			}
			return
		}
		switch {
		case status == http.StatusCreated:
		case status == http.StatusServiceUnavailable:
			time.Sleep(10 * time.Millisecond)
			continue
		default:
			t.Errorf("POST /v1/events (%d events) = %d %s, want 201", n, status, body)
			return
		}
		for i, res := range results {
			if res.Duplicate {
				t.Errorf("POST /v1/events: new event %d (id %q) answered as a duplicate of %d", i, ids[i], res.Index)
				continue
			}
			leaf, err := parseHash(res.LeafHash)
			if err != nil {
				t.Errorf("POST /v1/events: result %d: leaf_hash: %v", i, err)
				continue
			}
			a := ack{index: res.Index, leaf: leaf, id: ids[i], cycle: cycle}
			if a.id != "" {
				a.event = events[i]
			}
			rec.addAck(a)
		}
		// Spread the requests a little so that batches interleave
		// differently each time, and verification stays bounded.
		time.Sleep(time.Duration(r.IntN(4)) * time.Millisecond)
	}
}

// pollCheckpoints records every checkpoint GET /checkpoint serves, verified
// with the log's key, until ctx ends. While the log grows under load it
// also checks the proofs served live: each new checkpoint is consistent
// with the previous one, and includes an acknowledged event.
func pollCheckpoints(ctx context.Context, t *testing.T, s *server, rec *crashRecord, rng *rand.Rand) {
	var last checkpoint
	for ctx.Err() == nil {
		status, body, err := s.do(ctx, http.MethodGet, "/checkpoint", "", nil)
		if err != nil {
			return // killed
		}
		if status != http.StatusOK {
			t.Errorf("GET /checkpoint = %d %s, want 200", status, body)
			return
		}
		cp, err := s.parseCheckpoint(body)
		if err != nil {
			t.Errorf("GET /checkpoint: %v", err)
			return
		}
		if cp.size < last.size {
			t.Errorf("GET /checkpoint went from size %d to %d", last.size, cp.size)
		}
		rec.addCheckpoint(cp)
		if cp.size > last.size {
			if last.size > 0 {
				path := fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", last.size, cp.size)
				if p, ok := liveProof(ctx, t, s, path); !ok {
					return
				} else if err := tlog.CheckTree(p, int64(cp.size), cp.hash, int64(last.size), last.hash); err != nil {
					t.Errorf("under load: tlog.CheckTree(GET %s) = %v", path, err)
				}
			}
			if a, ok := rec.randomAck(rng, cp.size); ok {
				path := fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", a.index, cp.size)
				if p, ok := liveProof(ctx, t, s, path); !ok {
					return
				} else if err := tlog.CheckRecord(p, int64(cp.size), cp.hash, int64(a.index), a.leaf); err != nil {
					t.Errorf("under load: tlog.CheckRecord(GET %s) = %v", path, err)
				}
			}
		}
		last = cp
		time.Sleep(25 * time.Millisecond)
	}
}

// liveProof fetches a proof while the server may be killed at any moment;
// ok is false if it was.
func liveProof(ctx context.Context, t *testing.T, s *server, path string) ([]tlog.Hash, bool) {
	status, body, err := s.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, false
	}
	if status != http.StatusOK {
		t.Errorf("under load: GET %s = %d %s, want 200", path, status, body)
		return nil, false
	}
	var p proofResponse
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("under load: GET %s: %v", path, err)
		return nil, false
	}
	hashes := make([]tlog.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		var err error
		if hashes[i], err = parseHash(h); err != nil {
			t.Errorf("under load: GET %s: %v", path, err)
			return nil, false
		}
	}
	return hashes, true
}

// verifyAfterCrash checks the restarted server against everything
// observed before, and returns the indexes it has now read one by one.
func verifyAfterCrash(t *testing.T, s *server, rec *crashRecord, rng *rand.Rand, cycle int, verified []uint64) []uint64 {
	t.Helper()
	// The checkpoint the new process starts with is its stored latest: it
	// must not be older than any checkpoint served before the crash.
	first := s.latestCheckpoint()
	rec.mu.Lock()
	largest := slices.Max(slices.Collect(maps.Keys(rec.checkpoints)))
	rec.mu.Unlock()
	if first.size < largest {
		t.Errorf("cycle %d: after restart GET /checkpoint has size %d, but size %d was served before the crash", cycle, first.size, largest)
	}

	retryInflight(t, s, rec, cycle)

	rec.mu.Lock()
	acks := make([]ack, 0, len(rec.acks))
	for _, a := range rec.acks {
		acks = append(acks, a)
	}
	observed := make([]checkpoint, 0, len(rec.checkpoints))
	for _, cp := range rec.checkpoints {
		observed = append(observed, cp)
	}
	rec.mu.Unlock()
	slices.SortFunc(acks, func(a, b ack) int { return cmp.Compare(a.index, b.index) })
	slices.SortFunc(observed, func(a, b checkpoint) int { return cmp.Compare(a.size, b.size) })

	want := uint64(0)
	if len(acks) > 0 {
		want = acks[len(acks)-1].index + 1
	}
	cp := s.waitCheckpoint(want, 20*time.Second)

	// Consistency with every checkpoint ever observed, and the history
	// endpoint serves each of them byte for byte.
	for _, old := range observed {
		s.checkConsistency(old, cp)
		var raw []byte
		status, raw, err := s.do(t.Context(), http.MethodGet, fmt.Sprintf("/v1/checkpoints/%d", old.size), "", nil)
		if err != nil || status != http.StatusOK || string(raw) != string(old.raw) {
			t.Errorf("cycle %d: GET /v1/checkpoints/%d = %d %q, %v; want 200 and the note served before the crash %q", cycle, old.size, status, raw, err, old.raw)
		}
	}

	// Every acknowledged entry not yet checked one by one: read it and
	// recompute its leaf hash.
	done := make(map[uint64]bool, len(verified))
	for _, i := range verified {
		done[i] = true
	}
	var todo []ack
	for _, a := range acks {
		if !done[a.index] {
			todo = append(todo, a)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 4 {
		wg.Go(func() {
			for {
				k := next.Add(1) - 1
				if k >= int64(len(todo)) || t.Context().Err() != nil {
					return
				}
				a := todo[k]
				data, h, err := s.entry(t.Context(), a.index)
				if err != nil {
					t.Errorf("cycle %d: acknowledged entry %d: %v", cycle, a.index, err)
					continue
				}
				if h != a.leaf {
					t.Errorf("cycle %d: entry %d has leaf hash %x, acknowledged %x", cycle, a.index, h, a.leaf)
				}
				if a.id != "" {
					if got := entryEventID(data); got != a.id {
						t.Errorf("cycle %d: entry %d holds event id %q, acknowledged for %q", cycle, a.index, got, a.id)
					}
				}
				mu.Lock()
				verified = append(verified, a.index)
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	// All acknowledged entries, old ones included, through the entry
	// bundles: a later crash must not damage earlier data.
	checkBundles(t, s, cp, acks)

	// Inclusion proofs against the new checkpoint, for a sample.
	if len(acks) > 0 {
		sample := []ack{acks[0], acks[len(acks)-1]}
		for range 60 {
			sample = append(sample, acks[rng.IntN(len(acks))])
		}
		for _, a := range sample {
			s.checkInclusion(cp, a.index, a.leaf)
		}
	}

	// Resubmitting an acknowledged id returns the original entry.
	var withID []ack
	for _, a := range acks {
		if a.id != "" {
			withID = append(withID, a)
		}
	}
	if len(withID) > 0 {
		var batch []json.RawMessage
		var orig []ack
		for range 10 {
			a := withID[rng.IntN(len(withID))]
			batch = append(batch, a.event)
			orig = append(orig, a)
		}
		status, results, body, err := s.postEvents(t.Context(), "", batch)
		if err != nil || status != http.StatusOK {
			t.Errorf("cycle %d: resubmitting %d acknowledged ids = %d %s, %v; want 200", cycle, len(batch), status, body, err)
		} else {
			for i, res := range results {
				if res.Index != orig[i].index || decodeHash(t, "leaf_hash", res.LeafHash) != orig[i].leaf || !res.Duplicate {
					t.Errorf("cycle %d: resubmitting id %q = index %d leaf %s duplicate %v, want original index %d leaf %x duplicate true",
						cycle, orig[i].id, res.Index, res.LeafHash, res.Duplicate, orig[i].index, orig[i].leaf)
				}
			}
		}
	}

	rec.addCheckpoint(cp)
	if t.Failed() {
		t.FailNow()
	}
	return verified
}

// retryInflight resubmits the events with an id of the requests the crash
// cut off, as a client would. Each request was one all-or-nothing append,
// so either all of its events are already in the log (200, duplicates of
// entries holding those ids) or none is (201, appended now).
func retryInflight(t *testing.T, s *server, rec *crashRecord, cycle int) {
	t.Helper()
	rec.mu.Lock()
	batches, batchIDs := rec.inflight, rec.inflightIDs
	rec.inflight, rec.inflightIDs = nil, nil
	rec.mu.Unlock()
	dups := 0
	for b, events := range batches {
		ids := batchIDs[b]
		status, results, body, err := s.postEvents(t.Context(), "", events)
		if err != nil || (status != http.StatusOK && status != http.StatusCreated) {
			t.Errorf("cycle %d: retrying %d events cut off by the crash = %d %s, %v; want 200 or 201", cycle, len(events), status, body, err)
			continue
		}
		for i, res := range results {
			if res.Duplicate != (status == http.StatusOK) {
				t.Errorf("cycle %d: retrying ids %q after the crash: %q duplicate=%v but the answer is %d: the cut-off request was partly appended",
					cycle, ids, ids[i], res.Duplicate, status)
			}
			a := ack{index: res.Index, leaf: decodeHash(t, "leaf_hash", res.LeafHash), id: ids[i], event: events[i], cycle: cycle}
			if res.Duplicate {
				dups++
				data, h, err := s.entry(t.Context(), res.Index)
				if err != nil {
					t.Errorf("cycle %d: retried id %q is a duplicate of entry %d: %v", cycle, ids[i], res.Index, err)
					continue
				}
				if got := entryEventID(data); got != ids[i] || h != a.leaf {
					t.Errorf("cycle %d: retried id %q is a duplicate of entry %d, which holds id %q leaf %x (answered leaf %x)", cycle, ids[i], res.Index, got, h, a.leaf)
				}
			}
			rec.addAck(a)
		}
	}
	t.Logf("cycle %d: retried %d cut-off requests; %d of their events were already in the log", cycle, len(batches), dups)
}

// entryEventID returns body.id of a stored event leaf.
func entryEventID(data []byte) string {
	var leaf struct {
		Kind string `json:"kind"`
		Body struct {
			ID string `json:"id"`
		} `json:"body"`
	}
	if err := json.Unmarshal(data, &leaf); err != nil {
		return fmt.Sprintf("<undecodable leaf: %v>", err)
	}
	return leaf.Body.ID
}

// checkBundles reads every entry bundle of the tree of cp (C2SP
// tlog-tiles), checks that each entry is an event leaf (or an admin leaf:
// the first start records the admin key it generates), and that each
// acknowledged index holds the acknowledged leaf.
func checkBundles(t *testing.T, s *server, cp checkpoint, acks []ack) {
	t.Helper()
	byIndex := make(map[uint64]tlog.Hash, len(acks))
	for _, a := range acks {
		byIndex[a.index] = a.leaf
	}
	const width = 256
	for n := uint64(0); n*width < cp.size; n++ {
		p := uint8(0)
		if rest := cp.size - n*width; rest < width {
			p = uint8(rest)
		}
		path := "/" + layout.EntriesPath(n, p)
		bundle := s.get(path, nil)
		var entries [][]byte
		for off := 0; off < len(bundle); {
			if off+2 > len(bundle) {
				t.Fatalf("GET %s: dangling byte at offset %d", path, off)
			}
			l := int(binary.BigEndian.Uint16(bundle[off:]))
			if off+2+l > len(bundle) {
				t.Fatalf("GET %s: entry at offset %d overruns the bundle", path, off)
			}
			entries = append(entries, bundle[off+2:off+2+l])
			off += 2 + l
		}
		wantN := width
		if p != 0 {
			wantN = int(p)
		}
		if len(entries) != wantN {
			t.Fatalf("GET %s holds %d entries, want %d", path, len(entries), wantN)
		}
		for i, e := range entries {
			index := n*width + uint64(i)
			var leaf struct {
				Kind string          `json:"kind"`
				Body json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(e, &leaf); err != nil || leaf.Kind != "event" && leaf.Kind != "admin" || len(leaf.Body) == 0 {
				t.Errorf("entry %d in %s is not an event leaf: %q", index, path, e)
			}
			if want, ok := byIndex[index]; ok && leafHash(e) != want {
				t.Errorf("entry %d in %s has leaf hash %x, acknowledged %x", index, path, leafHash(e), want)
			}
		}
	}
}
