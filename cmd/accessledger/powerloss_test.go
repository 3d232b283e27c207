package main

// Power-loss tests: the real server runs with its data directory on a
// powerfs mount (internal/powerfs), an in-memory FUSE file system that
// keeps unsynced data apart and throws it away on a simulated power cut.
// A SIGKILL alone keeps the kernel's page cache, so TestCrashRecovery passes
// even with syncing off; these tests do not.

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessledger/accessledger/internal/powerfs"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// powerLossCyclesEnv sets the number of power cuts per test, for
	// longer soak runs.
	powerLossCyclesEnv = "ACCESSLEDGER_POWERLOSS_CYCLES"
	// powerLossSeedEnv replays the random schedule of an earlier run
	// (the thread timing still differs).
	powerLossSeedEnv = "ACCESSLEDGER_POWERLOSS_SEED"
	// powerLossDefaultCycles keeps each test around 10 s on two cores.
	powerLossDefaultCycles = 10
	powerLossWorkers       = 4
)

// errLost marks what the checker found lost across a power cut: an
// acknowledged entry or a served checkpoint that the log no longer has or
// contradicts, or a log that no longer opens. Errors without it are
// failures of the test harness itself (an unexpected answer under load, a
// timeout).
var errLost = errors.New("lost across a power cut")

// TestPowerLossKeepsAcknowledgedEntries runs concurrent load against the
// real server on a powerfs mount, cuts the power at a random moment, kills
// the server, remounts the surviving data with a fresh page cache and
// restarts the server on it, then checks that every acknowledged entry is
// there and provably included in a newly signed checkpoint, and that every
// checkpoint served before is consistent with it. It repeats this on the
// same log.
func TestPowerLossKeepsAcknowledgedEntries(t *testing.T) {
	h := newPowerLoss(t)
	for cycle := range powerLossCycles(t) {
		if err := h.cycle(cycle); err != nil {
			t.Fatalf("power cut %d (seed %d): %v", cycle, h.seed, err)
		}
	}
	// The log survived the cuts; it must also still stop cleanly.
	if code := h.s.terminate(20 * time.Second); code != 0 {
		t.Errorf("after the power cuts, SIGTERM: exit code %d, want 0\nstderr:\n%s", code, h.s.stderr)
	}
}

// TestPowerLossWithoutSyncLosesAcknowledgedEntries runs the same cycles
// against a server whose storage does not sync (a test-only switch), and
// wants the checker to find a lost acknowledged entry (or a log that no
// longer opens): proof that TestPowerLossKeepsAcknowledgedEntries can fail.
func TestPowerLossWithoutSyncLosesAcknowledgedEntries(t *testing.T) {
	h := newPowerLoss(t, "ACCESSLEDGER_UNSAFE_NO_SYNC_FOR_TESTING=1")
	cycles := powerLossCycles(t)
	for cycle := range cycles {
		err := h.cycle(cycle)
		if errors.Is(err, errLost) {
			t.Logf("power cut %d: the checker found the loss, as it must with syncing off: %v", cycle, err)
			return
		}
		if err != nil {
			t.Fatalf("power cut %d (seed %d): %v", cycle, h.seed, err)
		}
	}
	t.Errorf("%d power cuts with syncing off, and the checker found nothing lost (seed %d): it cannot tell a server that syncs from one that does not", cycles, h.seed)
}

func powerLossCycles(t *testing.T) int {
	t.Helper()
	v := os.Getenv(powerLossCyclesEnv)
	if v == "" {
		return powerLossDefaultCycles
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q, want a positive number of cycles", powerLossCyclesEnv, v)
	}
	return n
}

// powerLoss is one log on one powerfs file system, across power cuts. Its
// fields belong to the test goroutine.
type powerLoss struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	env  []string // added to the server's environment

	fs      *powerfs.FS
	mnt     *powerfs.Mount
	mntDir  string
	dataDir string // on the mount
	s       *server

	origin, vkey string
	// acks are the acknowledged entries verified after a cut, by index.
	acks map[uint64]plAck
	// observed are the checkpoints served, by size.
	observed map[uint64]checkpoint
	counter  atomic.Int64 // numbers the events, so that each is distinct
}

// plAck is an entry the server acknowledged.
type plAck struct {
	index uint64
	leaf  tlog.Hash
	id    string          // the event's id, if it had one
	event json.RawMessage // the event as sent, if it had an id
}

// newPowerLoss mounts a new powerfs file system and starts a server with a
// new log on it, or skips the test if FUSE cannot be mounted here.
func newPowerLoss(t *testing.T, env ...string) *powerLoss {
	t.Helper()
	if err := powerfs.Available(); err != nil {
		t.Skipf("the power-loss tests need a FUSE mount: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(powerLossSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q, want a number", powerLossSeedEnv, v)
		}
	}
	t.Logf("seed %d (%s=%d replays the schedule)", seed, powerLossSeedEnv, seed)
	mntDir := filepath.Join(t.TempDir(), "powerfs")
	h := &powerLoss{
		t:        t,
		seed:     seed,
		rng:      rand.New(rand.NewPCG(seed, 0)),
		env:      env,
		fs:       powerfs.New(),
		mntDir:   mntDir,
		dataDir:  filepath.Join(mntDir, "data"),
		acks:     map[uint64]plAck{},
		observed: map[uint64]checkpoint{},
	}
	if err := h.mount(); err != nil {
		t.Fatal(err)
	}
	if err := h.start(false); err != nil {
		t.Fatal(err)
	}
	h.origin, h.vkey = h.s.origin, h.s.vkey
	cp, err := h.checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	h.observed[cp.size] = cp
	return h
}

// mount mounts the file system at mntDir and unmounts it when the test
// ends, after the servers started later are killed (cleanups run last
// registered first).
func (h *powerLoss) mount() error {
	m, err := h.fs.Mount(h.mntDir)
	if err != nil {
		return err
	}
	h.mnt = m
	h.t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			h.t.Errorf("unmounting powerfs: %v", err)
		}
	})
	return nil
}

// start starts a server on the data directory. After a cut, a server that
// does not start is a loss.
func (h *powerLoss) start(afterCut bool) error {
	for attempt := 0; ; attempt++ {
		addr := freeAddr(h.t)
		args := []string{"serve", "--data", h.dataDir, "--listen", addr, "--checkpoint-interval", "100ms"}
		s := spawn(h.t, h.dataDir, addr, h.env, args)
		err := s.waitReady(30 * time.Second)
		if err == nil {
			s.loadIdentity()
			h.s = s
			return nil
		}
		s.kill()
		if attempt < 4 && strings.Contains(s.stderr.String(), "address already in use") {
			continue
		}
		if afterCut {
			return fmt.Errorf("%w: the server did not start on the data that survived the cut: %v\nstderr:\n%s", errLost, err, s.stderr)
		}
		return fmt.Errorf("starting the server: %v\nstderr:\n%s", err, s.stderr)
	}
}

// plCycleLog collects what clients observe under load until it is frozen
// at the power cut: what the server says after the cut is not durable and
// is not checked. It is shared by the load goroutines.
type plCycleLog struct {
	mu     sync.Mutex
	frozen bool
	acks   []plAck
	cps    []checkpoint
	err    error // the first failure of the load itself
}

func (l *plCycleLog) add(acks []plAck, cps ...checkpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.acks = append(l.acks, acks...)
		l.cps = append(l.cps, cps...)
	}
}

// fail records a failure under load, unless the log is frozen: once the
// power is cut, the server may fail in any way.
func (l *plCycleLog) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen && l.err == nil {
		l.err = err
	}
}

func (l *plCycleLog) freeze() ([]plAck, []checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.frozen = true
	return l.acks, l.cps, l.err
}

// cycle runs load for a random while, cuts the power, kills the server,
// remounts, restarts the server and checks what survived.
func (h *powerLoss) cycle(cycle int) error {
	d := 20*time.Millisecond + time.Duration(h.rng.Int64N(int64(380*time.Millisecond)))
	ctx, stop := context.WithCancel(h.t.Context())
	defer stop()
	seen := &plCycleLog{}
	var wg sync.WaitGroup
	for w := range powerLossWorkers {
		r := rand.New(rand.NewPCG(h.seed, uint64(cycle*powerLossWorkers+w+1)))
		wg.Go(func() { h.load(ctx, seen, r, cycle, w) })
	}
	wg.Go(func() { h.pollCheckpoints(ctx, seen) })
	time.Sleep(d)

	acks, cps, loadErr := seen.freeze()
	lost := h.fs.PowerCut()
	h.s.kill()
	stop()
	wg.Wait()
	if loadErr != nil {
		return fmt.Errorf("under load before the cut: %w", loadErr)
	}
	largest := uint64(0)
	for _, cp := range cps {
		largest = max(largest, cp.size)
	}
	h.t.Logf("power cut %d, %s after the load started: %d entries acknowledged, %d checkpoints served (largest %d); the cut dropped %d unsynced pages of %v",
		cycle, d.Round(time.Millisecond), len(acks), len(cps), largest, lost.Pages, lost.Paths)

	if err := h.mnt.Unmount(); err != nil {
		return err
	}
	if err := h.mount(); err != nil {
		return err
	}
	start := time.Now()
	if err := h.start(true); err != nil {
		return err
	}
	h.t.Logf("power cut %d: restarted in %s", cycle, time.Since(start).Round(time.Millisecond))
	return h.verify(acks, cps)
}

// load posts single events and small batches, most with an id, until ctx
// ends, and records every acknowledged entry.
func (h *powerLoss) load(ctx context.Context, seen *plCycleLog, r *rand.Rand, cycle, w int) {
	s := h.s
	for seq := 0; ctx.Err() == nil; seq++ {
		n := 1
		if r.IntN(2) == 0 {
			n = 2 + r.IntN(7)
		}
		events := make([]json.RawMessage, n)
		ids := make([]string, n)
		for i := range events {
			if r.IntN(4) != 0 {
				ids[i] = fmt.Sprintf("pl%d-w%d-%d-%d", cycle, w, seq, i)
			}
			events[i] = testEvent(ids[i], int(h.counter.Add(1)))
		}
		var (
			status  int
			results []postResult
			body    []byte
			err     error
		)
		if n == 1 && r.IntN(2) == 0 {
			// A single event, not wrapped in a batch.
			status, body, err = s.do(ctx, http.MethodPost, "/v1/events", "", events[0])
			if err == nil && status/100 == 2 {
				var res postResult
				err = json.Unmarshal(body, &res)
				results = []postResult{res}
			}
		} else {
			status, results, body, err = s.postEvents(ctx, "", events)
		}
		if err != nil {
			seen.fail(fmt.Errorf("POST /v1/events (%d events): %v", n, err))
			return
		}
		switch status {
		case http.StatusCreated:
		case http.StatusServiceUnavailable:
			time.Sleep(5 * time.Millisecond)
			continue
		default:
			seen.fail(fmt.Errorf("POST /v1/events (%d events) = %d %s, want 201", n, status, body))
			return
		}
		acks := make([]plAck, 0, n)
		for i, res := range results {
			leaf, err := parseHash(res.LeafHash)
			if err != nil || res.Duplicate {
				seen.fail(fmt.Errorf("POST /v1/events: result %d = %+v (%v), want a new entry", i, res, err))
				return
			}
			a := plAck{index: res.Index, leaf: leaf, id: ids[i]}
			if a.id != "" {
				a.event = events[i]
			}
			acks = append(acks, a)
		}
		seen.add(acks)
		time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
	}
}

// pollCheckpoints records every checkpoint GET /checkpoint serves until ctx
// ends, verified with the log's key.
func (h *powerLoss) pollCheckpoints(ctx context.Context, seen *plCycleLog) {
	s := h.s
	for ctx.Err() == nil {
		status, body, err := s.do(ctx, http.MethodGet, "/checkpoint", "", nil)
		if err != nil {
			seen.fail(fmt.Errorf("GET /checkpoint: %v", err))
			return
		}
		if status != http.StatusOK {
			seen.fail(fmt.Errorf("GET /checkpoint = %d %s, want 200", status, body))
			return
		}
		cp, err := s.parseCheckpoint(body)
		if err != nil {
			seen.fail(fmt.Errorf("GET /checkpoint: %v", err))
			return
		}
		seen.add(nil, cp)
		time.Sleep(20 * time.Millisecond)
	}
}

// verify checks the restarted server against what was acknowledged and
// served before the cut (acks, cps) and in earlier cycles.
func (h *powerLoss) verify(acks []plAck, cps []checkpoint) error {
	s := h.s
	if s.origin != h.origin || s.vkey != h.vkey {
		return fmt.Errorf("%w: after the cut the log is %q with key %q, want %q with %q", errLost, s.origin, s.vkey, h.origin, h.vkey)
	}
	for _, cp := range cps {
		if old, ok := h.observed[cp.size]; ok && old.hash != cp.hash {
			return fmt.Errorf("%w: two checkpoints of size %d with different roots %x and %x were served", errLost, cp.size, old.hash, cp.hash)
		}
		h.observed[cp.size] = cp
	}
	for _, a := range acks {
		if old, ok := h.acks[a.index]; ok {
			return fmt.Errorf("%w: index %d was acknowledged for a new entry (leaf %x) after it had been verified with leaf %x", errLost, a.index, a.leaf, old.leaf)
		}
	}

	// Every entry acknowledged before the cut, read back.
	if err := h.checkEntries(acks); err != nil {
		return err
	}

	// The latest checkpoint must not be older than any served before.
	first, err := h.checkpoint()
	if err != nil {
		return err
	}
	largest := slices.Max(slices.Collect(maps.Keys(h.observed)))
	if first.size < largest {
		return fmt.Errorf("%w: after the cut GET /checkpoint has size %d, but size %d was served before", errLost, first.size, largest)
	}
	for _, a := range acks {
		h.acks[a.index] = a
	}
	want := uint64(0)
	for i := range h.acks {
		want = max(want, i+1)
	}
	cp, err := h.waitCheckpoint(want, 15*time.Second)
	if err != nil {
		return err
	}

	// Inclusion in the new checkpoint: every entry of this cycle, and a
	// sample of the earlier ones.
	sample := slices.Clone(acks)
	if len(h.acks) > len(acks) {
		all := slices.Collect(maps.Values(h.acks))
		for range 20 {
			sample = append(sample, all[h.rng.IntN(len(all))])
		}
	}
	if err := parallel(sample, func(a plAck) error { return h.checkInclusion(cp, a) }); err != nil {
		return err
	}
	// Every checkpoint ever served is a prefix of the new one, and is
	// still served byte for byte by the history endpoint.
	if err := parallel(slices.Collect(maps.Values(h.observed)), func(old checkpoint) error { return h.checkConsistency(old, cp) }); err != nil {
		return err
	}
	// Every acknowledged entry, from every cycle, in the entry bundles: a
	// later cut must not damage earlier data.
	if err := h.checkBundles(cp); err != nil {
		return err
	}
	// Resubmitting acknowledged ids returns the original entries.
	if err := h.checkResubmit(); err != nil {
		return err
	}
	h.observed[cp.size] = cp
	return nil
}

// checkpoint fetches and verifies GET /checkpoint.
func (h *powerLoss) checkpoint() (checkpoint, error) {
	status, body, err := h.s.do(h.t.Context(), http.MethodGet, "/checkpoint", "", nil)
	if err != nil {
		return checkpoint{}, fmt.Errorf("GET /checkpoint: %v", err)
	}
	if status != http.StatusOK {
		return checkpoint{}, fmt.Errorf("GET /checkpoint = %d %s, want 200", status, body)
	}
	return h.s.parseCheckpoint(body)
}

// waitCheckpoint polls GET /checkpoint until it covers size entries.
func (h *powerLoss) waitCheckpoint(size uint64, timeout time.Duration) (checkpoint, error) {
	deadline := time.Now().Add(timeout)
	for {
		cp, err := h.checkpoint()
		if err != nil || cp.size >= size {
			return cp, err
		}
		if time.Now().After(deadline) {
			return cp, fmt.Errorf("%w: GET /checkpoint has size %d after %s, want >= %d, the number of entries acknowledged", errLost, cp.size, timeout, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkEntries reads every acknowledged entry of acks and compares its
// leaf hash, computed here, with the acknowledged one.
func (h *powerLoss) checkEntries(acks []plAck) error {
	var mu sync.Mutex
	var missing []string
	err := parallel(acks, func(a plAck) error {
		path := "/v1/entries/" + strconv.FormatUint(a.index, 10)
		status, body, err := h.s.do(h.t.Context(), http.MethodGet, path, "", nil)
		if err != nil {
			return fmt.Errorf("GET %s: %v", path, err)
		}
		var problem string
		if status != http.StatusOK {
			problem = fmt.Sprintf("GET %s = %d %s, want 200", path, status, strings.TrimSpace(string(body)))
		} else {
			var r entryResponse
			if err := json.Unmarshal(body, &r); err != nil {
				return fmt.Errorf("GET %s: decoding: %v", path, err)
			}
			data := []byte(r.Entry)
			if r.EntryBase64 != nil {
				data = r.EntryBase64
			}
			if got := leafHash(data); got != a.leaf || r.Index != a.index {
				problem = fmt.Sprintf("GET %s = index %d with leaf hash %x, want index %d with the acknowledged %x", path, r.Index, got, a.index, a.leaf)
			} else if a.id != "" && entryEventID(data) != a.id {
				problem = fmt.Sprintf("GET %s holds event id %q, want %q", path, entryEventID(data), a.id)
			}
		}
		if problem != "" {
			mu.Lock()
			missing = append(missing, problem)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: %d of the %d entries acknowledged before the cut are missing or changed; for example %s",
			errLost, len(missing), len(acks), missing[0])
	}
	return nil
}

// proof fetches a proof and decodes its hashes; a non-200 answer is a
// loss (the server cannot prove what it served or acknowledged).
func (h *powerLoss) proof(path string) ([]tlog.Hash, error) {
	status, body, err := h.s.do(h.t.Context(), http.MethodGet, path, "", nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", path, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s = %d %s, want 200", errLost, path, status, body)
	}
	var p proofResponse
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("GET %s: %v", path, err)
	}
	hashes := make([]tlog.Hash, len(p.Hashes))
	for i, s := range p.Hashes {
		if hashes[i], err = parseHash(s); err != nil {
			return nil, fmt.Errorf("GET %s: %v", path, err)
		}
	}
	return hashes, nil
}

// checkInclusion verifies with tlog.CheckRecord that a is in the tree of
// cp.
func (h *powerLoss) checkInclusion(cp checkpoint, a plAck) error {
	path := fmt.Sprintf("/v1/proofs/inclusion?index=%d&size=%d", a.index, cp.size)
	p, err := h.proof(path)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(p, int64(cp.size), cp.hash, int64(a.index), a.leaf); err != nil {
		return fmt.Errorf("%w: tlog.CheckRecord(GET %s, leaf %x) = %v, want nil", errLost, path, a.leaf, err)
	}
	return nil
}

// checkConsistency verifies with tlog.CheckTree that old is a prefix of
// cp, and that the history endpoint serves old unchanged.
func (h *powerLoss) checkConsistency(old, cp checkpoint) error {
	if old.size > cp.size {
		return fmt.Errorf("%w: the log shrank from a served checkpoint of size %d to %d", errLost, old.size, cp.size)
	}
	if old.size > 0 && old.size < cp.size {
		path := fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", old.size, cp.size)
		p, err := h.proof(path)
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(p, int64(cp.size), cp.hash, int64(old.size), old.hash); err != nil {
			return fmt.Errorf("%w: tlog.CheckTree(GET %s) = %v, want nil: checkpoint %d (%x) is not a prefix of %d (%x)",
				errLost, path, err, old.size, old.hash, cp.size, cp.hash)
		}
	} else if old.size == cp.size && old.hash != cp.hash {
		return fmt.Errorf("%w: checkpoint of size %d has root %x, but %x was served before", errLost, cp.size, cp.hash, old.hash)
	}
	if old.size == 0 {
		return nil
	}
	path := fmt.Sprintf("/v1/checkpoints/%d", old.size)
	status, raw, err := h.s.do(h.t.Context(), http.MethodGet, path, "", nil)
	if err != nil {
		return fmt.Errorf("GET %s: %v", path, err)
	}
	if status != http.StatusOK || string(raw) != string(old.raw) {
		return fmt.Errorf("%w: GET %s = %d %q, want 200 and the note served before %q", errLost, path, status, raw, old.raw)
	}
	return nil
}

// checkBundles reads every entry bundle of the tree of cp (C2SP
// tlog-tiles) and checks that each acknowledged index holds the
// acknowledged leaf.
func (h *powerLoss) checkBundles(cp checkpoint) error {
	const width = 256
	for n := uint64(0); n*width < cp.size; n++ {
		p := uint8(0)
		if rest := cp.size - n*width; rest < width {
			p = uint8(rest)
		}
		path := "/" + layout.EntriesPath(n, p)
		status, bundle, err := h.s.do(h.t.Context(), http.MethodGet, path, "", nil)
		if err != nil {
			return fmt.Errorf("GET %s: %v", path, err)
		}
		if status != http.StatusOK {
			return fmt.Errorf("%w: GET %s = %d %s, want 200", errLost, path, status, bundle)
		}
		i := n * width
		for off := 0; off < len(bundle); i++ {
			if off+2 > len(bundle) {
				return fmt.Errorf("%w: GET %s: dangling byte at offset %d", errLost, path, off)
			}
			l := int(binary.BigEndian.Uint16(bundle[off:]))
			if off+2+l > len(bundle) {
				return fmt.Errorf("%w: GET %s: entry at offset %d overruns the bundle", errLost, path, off)
			}
			e := bundle[off+2 : off+2+l]
			if a, ok := h.acks[i]; ok && leafHash(e) != a.leaf {
				return fmt.Errorf("%w: entry %d in GET %s has leaf hash %x, acknowledged %x", errLost, i, path, leafHash(e), a.leaf)
			}
			off += 2 + l
		}
		want := uint64(width)
		if p != 0 {
			want = uint64(p)
		}
		if got := i - n*width; got != want {
			return fmt.Errorf("%w: GET %s holds %d entries, want %d", errLost, path, got, want)
		}
	}
	return nil
}

// checkResubmit resubmits a few acknowledged events with an id and wants
// their original entries back (200, duplicates).
func (h *powerLoss) checkResubmit() error {
	var withID []plAck
	for _, a := range h.acks {
		if a.id != "" {
			withID = append(withID, a)
		}
	}
	if len(withID) == 0 {
		return nil
	}
	slices.SortFunc(withID, func(a, b plAck) int { return cmp.Compare(a.index, b.index) })
	var batch []json.RawMessage
	var orig []plAck
	picked := map[uint64]bool{}
	for range 8 {
		a := withID[h.rng.IntN(len(withID))]
		if !picked[a.index] {
			picked[a.index] = true
			batch = append(batch, a.event)
			orig = append(orig, a)
		}
	}
	status, results, body, err := h.s.postEvents(h.t.Context(), "", batch)
	if err != nil {
		return fmt.Errorf("resubmitting %d acknowledged ids: %v", len(batch), err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("%w: resubmitting %d acknowledged ids = %d %s, want 200", errLost, len(batch), status, body)
	}
	for i, res := range results {
		if res.Index != orig[i].index || res.LeafHash != b64(orig[i].leaf) || !res.Duplicate {
			return fmt.Errorf("%w: resubmitting id %q = index %d leaf %s duplicate %v, want the original index %d leaf %s duplicate true",
				errLost, orig[i].id, res.Index, res.LeafHash, res.Duplicate, orig[i].index, b64(orig[i].leaf))
		}
	}
	return nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// parallel calls check on every item from four goroutines and returns the
// first error.
func parallel[T any](items []T, check func(T) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range 4 {
		wg.Go(func() {
			for !failed.Load() {
				k := next.Add(1) - 1
				if k >= int64(len(items)) {
					return
				}
				if err := check(items[k]); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return first
}
