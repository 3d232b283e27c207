package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// wantErr names the outcome a test expects.
type wantErr int

const (
	accepted wantErr = iota
	malformed
	unknownLog
	badSignature
	conflict
	inconsistent
)

func (w wantErr) String() string {
	return [...]string{"cosigned", "ErrMalformed", "ErrUnknownLog", "ErrBadSignature", "*ConflictError", "ErrInconsistent"}[w]
}

func classify(err error) wantErr {
	var c *ConflictError
	switch {
	case err == nil:
		return accepted
	case errors.As(err, &c):
		return conflict
	case errors.Is(err, ErrMalformed):
		return malformed
	case errors.Is(err, ErrUnknownLog):
		return unknownLog
	case errors.Is(err, ErrBadSignature):
		return badSignature
	case errors.Is(err, ErrInconsistent):
		return inconsistent
	}
	return -1
}

// TestAddCheckpoint runs every outcome of add-checkpoint against a witness
// that has cosigned the log at size 5.
func TestAddCheckpoint(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(20, "a")
	other := newTestLog(t, "log.example/other") // not trusted
	other.append(3, "o")
	impostor := newTestLog(t, "log.example/a") // same name, another key
	impostor.append(20, "a")
	fork := newTestLogWithKeyOf(t, lg)
	fork.append(20, "fork")

	tests := []struct {
		name       string
		req        func() AddRequest
		want       wantErr
		conflictAt uint64
		evidence   string // reason kept, "" for none
	}{
		{"consistent", func() AddRequest { return lg.request(5, 10) }, accepted, 0, ""},
		{"same checkpoint again", func() AddRequest { return lg.request(5, 5) }, accepted, 0, ""},
		{"extra unknown signature ignored", func() AddRequest {
			r := lg.request(5, 10)
			r.Checkpoint = append(r.Checkpoint, "— someone.example/x AAAAAAAAAA==\n"...)
			return r
		}, accepted, 0, ""},
		{"unknown origin", func() AddRequest { return other.request(0, 3) }, unknownLog, 0, ""},
		{"no trusted signature", func() AddRequest { return impostor.request(5, 10) }, badSignature, 0, ""},
		{"signature does not verify", func() AddRequest {
			r := lg.request(5, 10)
			r.Checkpoint = bytes.Replace(r.Checkpoint, []byte("\n10\n"), []byte("\n11\n"), 1)
			return r
		}, badSignature, 0, ""},
		{"a second signature by the log's key that does not verify", func() AddRequest {
			// note.Open verifies the first and skips the second:
			// tlog-witness says 403 whichever line fails.
			r := lg.request(5, 10)
			lines := bytes.Split(bytes.TrimSuffix(r.Checkpoint, []byte("\n")), []byte("\n"))
			bad := bytes.Clone(lines[len(lines)-1])
			i := len(bad) - 20 // in the signature, past the key ID
			bad[i] = map[bool]byte{true: 'B', false: 'A'}[bad[i] == 'A']
			r.Checkpoint = append(r.Checkpoint, append(bad, '\n')...)
			return r
		}, badSignature, 0, ""},
		{"not a signed note", func() AddRequest {
			return AddRequest{OldSize: 5, Checkpoint: []byte("log.example/a\n10\nnot signed\n")}
		}, malformed, 0, ""},
		{"tree size with a leading zero", func() AddRequest {
			r := lg.request(5, 10)
			r.Checkpoint = lg.sign(bytes.Replace(lg.checkpointText(10), []byte("\n10\n"), []byte("\n010\n"), 1))
			return r
		}, malformed, 0, ""},
		{"root of 3 bytes", func() AddRequest {
			return AddRequest{OldSize: 5, Checkpoint: lg.sign([]byte("log.example/a\n10\nAAAA\n"))}
		}, malformed, 0, ""},
		{"non-canonical base64 root", func() AddRequest {
			r := lg.request(5, 10)
			text := lg.checkpointText(10)
			lines := bytes.Split(text, []byte("\n"))
			root := lines[2]
			// The last character before "=" carries 2 padding bits.
			i := bytes.IndexByte(root, '=') - 1
			const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
			root[i] = b64[strings.IndexByte(b64, root[i])|1]
			r.Checkpoint = lg.sign(bytes.Join(lines, []byte("\n")))
			return r
		}, malformed, 0, ""},
		{"empty extension line", func() AddRequest {
			r := lg.request(5, 10)
			r.Checkpoint = lg.sign(append(lg.checkpointText(10), '\n'))
			return r
		}, malformed, 0, ""},
		{"signed note that is not a checkpoint", func() AddRequest {
			return AddRequest{OldSize: 5, Checkpoint: lg.sign([]byte("log.example/a\nten\nAAAA\n"))}
		}, malformed, 0, ""},
		{"old larger than size", func() AddRequest { return lg.request(5, 4) }, malformed, 0, ""},
		{"stale old size", func() AddRequest { return lg.request(3, 10) }, conflict, 5, ""},
		{"old size zero", func() AddRequest { return lg.request(0, 10) }, conflict, 5, ""},
		{"older checkpoint", func() AddRequest { return lg.request(3, 4) }, conflict, 5, ""},
		{"fork at the same size via old 0", func() AddRequest { return fork.request(0, 5) }, conflict, 5, ReasonFork},
		{"fork at the same size", func() AddRequest { return fork.request(5, 5) }, inconsistent, 0, ReasonFork},
		{"fork with its own proof", func() AddRequest { return fork.request(5, 12) }, inconsistent, 0, ReasonInconsistent},
		{"bad proof hash", func() AddRequest {
			r := lg.request(5, 12)
			r.Proof[0] = bytes.Repeat([]byte{1}, 32)
			return r
		}, inconsistent, 0, ReasonInconsistent},
		{"missing proof", func() AddRequest {
			r := lg.request(5, 12)
			r.Proof = nil
			return r
		}, inconsistent, 0, ReasonInconsistent},
		// The very checkpoint cosigned, with a proof where none belongs:
		// refused, and not kept as evidence, which anyone could plant.
		{"same size with a proof", func() AddRequest {
			r := lg.request(5, 5)
			r.Proof = [][]byte{make([]byte, 32)}
			return r
		}, inconsistent, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestWitness(t, lg)
			if _, err := w.AddCheckpoint(ctx, lg.request(0, 5)); err != nil {
				t.Fatalf("AddCheckpoint(0 → 5) = %v, want cosignature", err)
			}
			_, err := w.AddCheckpoint(ctx, tt.req())
			if got := classify(err); got != tt.want {
				t.Fatalf("AddCheckpoint() = %v (%s), want %s", err, got, tt.want)
			}
			var c *ConflictError
			if errors.As(err, &c) && c.Size != tt.conflictAt {
				t.Errorf("AddCheckpoint() conflict size = %d, want %d", c.Size, tt.conflictAt)
			}
			evs, _, err := w.Evidence(ctx, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, e := range evs {
				reasons = append(reasons, e.Reason)
			}
			if want := strings.Fields(tt.evidence); fmt.Sprint(reasons) != fmt.Sprint(want) {
				t.Errorf("Evidence() reasons = %v, want %v", reasons, want)
			}
		})
	}
}

// newTestLogWithKeyOf returns an empty log with l's origin and key: what a
// log that forks looks like.
func newTestLogWithKeyOf(t *testing.T, l *testLog) *testLog {
	f := &testLog{t: t, origin: l.origin, signer: l.signer, vkey: l.vkey}
	return f
}

func TestEmptyTree(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/empty")
	w := newTestWitness(t, lg)
	if _, err := w.AddCheckpoint(ctx, lg.request(0, 0)); err != nil {
		t.Fatalf("AddCheckpoint(size 0, empty root) = %v, want cosignature", err)
	}
	bad := AddRequest{Checkpoint: lg.sign([]byte("log.example/empty\n0\n" + strings.Repeat("A", 43) + "=\n"))}
	if _, err := w.AddCheckpoint(ctx, bad); classify(err) != inconsistent {
		t.Errorf("AddCheckpoint(size 0, other root) = %v, want ErrInconsistent", err)
	}
	lg.append(3, "e")
	withProof := lg.request(0, 3)
	withProof.Proof = [][]byte{make([]byte, 32)}
	if _, err := w.AddCheckpoint(ctx, withProof); classify(err) != inconsistent {
		t.Errorf("AddCheckpoint(old 0 with a proof) = %v, want ErrInconsistent", err)
	}
	evs, _, _ := w.Evidence(ctx, 0, 10)
	if len(evs) != 2 || evs[0].Reason != ReasonEmptyTreeRoot || evs[1].Reason != ReasonProofFromZero {
		t.Errorf("Evidence() = %+v, want empty_tree_root then proof_from_zero", evs)
	}
}

// TestCosignatureVerifiesWithFormats checks our cosignatures with
// transparency-dev/formats, and the stored checkpoint the monitoring read
// serves.
func TestCosignatureVerifiesWithFormats(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(7, "a")
	w := newTestWitness(t, lg)
	req := lg.request(0, 7)
	lines, err := w.AddCheckpoint(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(lines, []byte("— witness.example/w1 ")) || !bytes.HasSuffix(lines, []byte("\n")) || bytes.Count(lines, []byte("\n")) != 1 {
		t.Fatalf("AddCheckpoint() = %q, want one line \"— witness.example/w1 <base64>\\n\"", lines)
	}
	v, err := fnote.NewVerifierForCosignatureV1(w.VerifierKey())
	if err != nil {
		t.Fatalf("NewVerifierForCosignatureV1(%q) = %v", w.VerifierKey(), err)
	}
	n, err := note.Open(append(bytes.Clone(req.Checkpoint), lines...), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open(checkpoint + cosignature) = %v, want it verified by the formats verifier", err)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil || ts.Unix() != 1_700_000_000 {
		t.Errorf("CoSigV1Timestamp() = %v, %v, want %d", ts.Unix(), err, 1_700_000_000)
	}
	logV, _ := note.NewVerifier(lg.vkey)
	stored, err := w.Latest(ctx, sha256.Sum256([]byte(lg.origin)))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := note.Open(stored, note.VerifierList(v, logV)); err != nil || len(n.Sigs) != 2 {
		t.Errorf("Latest() = %q: %v, want the checkpoint signed by the log and cosigned", stored, err)
	}
	if _, err := w.Latest(ctx, sha256.Sum256([]byte("log.example/unknown"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Latest(unknown) = %v, want ErrNotFound", err)
	}
}

// TestCompareAndSwap races two submissions from the same old size, the
// first held up after its check and before its store: the other must not
// be checked against the stale state. Exactly one is cosigned, the other
// gets 409 with the winner's size, and the state is the winner's (the
// rollback race tlog-witness describes cannot happen).
func TestCompareAndSwap(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(20, "a")
	stall := make(chan struct{})
	stalled := make(chan struct{})
	var first atomic.Bool
	cfg := Config{Dir: t.TempDir(), Signer: testCosigner(t, "witness.example/w1"), Logs: []PolicyLog{lg.policyLog()}}
	cfg.beforeStore = func() {
		if first.CompareAndSwap(false, true) {
			close(stalled)
			<-stall
		}
	}
	w, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	type result struct {
		size uint64
		err  error
	}
	results := make(chan result, 2)
	submit := func(size int64) {
		_, err := w.AddCheckpoint(ctx, lg.request(0, size))
		results <- result{uint64(size), err}
	}
	go submit(10) // checked, then held before its store
	<-stalled
	go submit(20)
	time.Sleep(50 * time.Millisecond) // let it queue behind
	close(stall)
	var won []uint64
	var lost []error
	for range 2 {
		r := <-results
		if r.err == nil {
			won = append(won, r.size)
		} else {
			lost = append(lost, r.err)
		}
	}
	if len(won) != 1 || len(lost) != 1 {
		t.Fatalf("cosigned %v, refused %v; want exactly one of each", won, lost)
	}
	var c *ConflictError
	if !errors.As(lost[0], &c) || c.Size != won[0] {
		t.Errorf("the other submission got %v, want 409 at %d", lost[0], won[0])
	}
	infos, _ := w.Logs(ctx)
	if infos[0].Size != won[0] {
		t.Errorf("Logs()[0].Size = %d, want the winner's %d", infos[0].Size, won[0])
	}
}

// TestConcurrentSubmissions has many goroutines submit interleaved
// checkpoints of one log; the state only ever moves forward and every
// answer agrees with it.
func TestConcurrentSubmissions(t *testing.T) {
	ctx := context.Background()
	const leaves, workers, rounds = 300, 16, 40
	lg := newTestLog(t, "log.example/a")
	lg.append(leaves, "a")
	reqs := make(map[[2]int64]AddRequest) // precomputed (old, size) requests
	var reqMu sync.Mutex
	request := func(old, size int64) AddRequest {
		reqMu.Lock()
		defer reqMu.Unlock()
		k := [2]int64{old, size}
		if r, ok := reqs[k]; ok {
			return r
		}
		r := lg.request(old, size)
		reqs[k] = r
		return r
	}
	w := newTestWitness(t, lg)
	originHash := sha256.Sum256([]byte(lg.origin))

	var cosignedSizes sync.Map // sizes some answer cosigned
	cosignedSizes.Store(uint64(0), true)
	var maxCosigned atomic.Uint64
	stop := make(chan struct{})
	watchErr := make(chan error, 1)
	go func() { // the stored state never moves backwards
		var last uint64
		for {
			select {
			case <-stop:
				watchErr <- nil
				return
			default:
			}
			raw, err := w.Latest(ctx, originHash)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				watchErr <- err
				return
			}
			size := sizeOf(t, raw)
			if size < last {
				watchErr <- fmt.Errorf("stored size went from %d back to %d", last, size)
				return
			}
			last = size
		}
	}()
	var wg sync.WaitGroup
	var errs = make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(g), 1))
			var known int64
			for r := 0; r < rounds; r++ {
				size := known + rng.Int64N(leaves-known+1)
				if rng.IntN(4) == 0 {
					size = known // resubmit the same size
				}
				_, err := w.AddCheckpoint(ctx, request(known, size))
				var c *ConflictError
				switch {
				case err == nil:
					cosignedSizes.Store(uint64(size), true)
					for {
						m := maxCosigned.Load()
						if uint64(size) <= m || maxCosigned.CompareAndSwap(m, uint64(size)) {
							break
						}
					}
					known = size
				case errors.As(err, &c):
					if int64(c.Size) == known {
						errs <- fmt.Errorf("409 with the size %d the request claimed", c.Size)
						return
					}
					known = int64(c.Size)
				default:
					errs <- fmt.Errorf("AddCheckpoint(%d → %d) = %v", known, size, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-watchErr; err != nil {
		t.Fatal(err)
	}
	raw, err := w.Latest(ctx, originHash)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sizeOf(t, raw), maxCosigned.Load(); got != want {
		t.Errorf("final stored size = %d, want the largest cosigned size %d", got, want)
	}
	// Every 409 told a size that was cosigned: checked implicitly, since
	// the next request from that size must have been accepted or
	// conflicted again; and nothing was kept as evidence.
	if evs, _, _ := w.Evidence(ctx, 0, 10); len(evs) != 0 {
		t.Errorf("Evidence() = %d records, want none (all submissions were consistent)", len(evs))
	}
}

func sizeOf(t testing.TB, signed []byte) uint64 {
	lines := strings.SplitN(string(signed), "\n", 3)
	var n uint64
	if _, err := fmt.Sscan(lines[1], &n); err != nil {
		t.Fatalf("checkpoint %q: %v", signed, err)
	}
	return n
}

// TestForkIsRefused: a second log with the same key and origin but other
// entries is refused once the witness cosigned the first, and the
// evidence holds both signed checkpoints.
func TestForkIsRefused(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(10, "a")
	fork := newTestLogWithKeyOf(t, lg)
	fork.append(12, "b")
	w := newTestWitness(t, lg)
	if _, err := w.AddCheckpoint(ctx, lg.request(0, 10)); err != nil {
		t.Fatal(err)
	}
	for _, req := range []AddRequest{fork.request(10, 12), fork.request(10, 12), fork.request(10, 10)} {
		if _, err := w.AddCheckpoint(ctx, req); classify(err) != inconsistent {
			t.Fatalf("AddCheckpoint(fork) = %v, want ErrInconsistent", err)
		}
	}
	evs, next, err := w.Evidence(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || next != 0 {
		t.Fatalf("Evidence() = %d records (next %d), want 2 (a replay adds none)", len(evs), next)
	}
	if evs[0].Reason != ReasonInconsistent || evs[1].Reason != ReasonFork {
		t.Errorf("Evidence() reasons = %s, %s, want %s, %s", evs[0].Reason, evs[1].Reason, ReasonInconsistent, ReasonFork)
	}
	// The counter counts what was kept: the replay is neither counted
	// nor logged again, or anyone could inflate what operators alert on.
	for _, reason := range []string{ReasonInconsistent, ReasonFork} {
		if n := testutil.ToFloat64(w.metrics.evidence.WithLabelValues(reason)); n != 1 {
			t.Errorf("accessledger_witness_evidence_total{reason=%q} = %v after a replay, want 1", reason, n)
		}
	}
	forked := string(fork.checkpoint(10))
	if !strings.HasSuffix(evs[1].Request, forked) || !strings.HasPrefix(evs[1].Latest, string(textOf(lg.checkpoint(10)))) {
		t.Errorf("Evidence()[1] = %+v, want the forked checkpoint and the cosigned one", evs[1])
	}
	if evs[1].Size != 10 || evs[1].LatestSize != 10 || evs[1].Origin != lg.origin {
		t.Errorf("Evidence()[1] sizes = %d, %d, origin %q; want 10, 10, %q", evs[1].Size, evs[1].LatestSize, evs[1].Origin, lg.origin)
	}
	// Paging.
	page, next, _ := w.Evidence(ctx, 0, 1)
	if len(page) != 1 || next != evs[1].ID {
		t.Errorf("Evidence(0, 1) = %d records, next %d; want 1, %d", len(page), next, evs[1].ID)
	}
}

func TestCreateAndOpen(t *testing.T) {
	ctx := context.Background()
	lg := newTestLog(t, "log.example/a")
	lg.append(4, "a")
	dir := t.TempDir()
	cfg := Config{Dir: dir + "/w", Signer: testCosigner(t, "witness.example/w1"), Logs: []PolicyLog{lg.policyLog()}}
	if _, err := Open(ctx, cfg); !errors.Is(err, ErrNoState) {
		t.Fatalf("Open(missing) = %v, want ErrNoState", err)
	}
	w, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(ctx, lg.request(0, 4)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := Create(ctx, cfg); !errors.Is(err, ErrExists) {
		t.Fatalf("Create(existing) = %v, want ErrExists", err)
	}
	w, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var c *ConflictError
	if _, err := w.AddCheckpoint(ctx, lg.request(0, 4)); !errors.As(err, &c) || c.Size != 4 {
		t.Errorf("AddCheckpoint after reopening = %v, want 409 at 4", err)
	}
	w.SetLogs(nil)
	if _, err := w.AddCheckpoint(ctx, lg.request(4, 4)); !errors.Is(err, ErrUnknownLog) {
		t.Errorf("AddCheckpoint after SetLogs(nil) = %v, want ErrUnknownLog", err)
	}
}

func TestCosignerTimestamp(t *testing.T) {
	c := testCosigner(t, "witness.example/w1")
	c.clock = func() time.Time { return time.Unix(0, 0) }
	if _, err := c.Sign([]byte("a\n1\nAAAA\n")); err == nil {
		t.Error("Sign() with a zero timestamp succeeded, want an error")
	}
	c.clock = time.Now
	if _, err := c.Sign([]byte("not a checkpoint\n")); err == nil {
		t.Error("Sign(one line) succeeded, want an error")
	}
	if !strings.HasPrefix(c.VerifierKey(), "witness.example/w1+") {
		t.Errorf("VerifierKey() = %q", c.VerifierKey())
	}
	v, err := fnote.NewVerifierForCosignatureV1(c.VerifierKey())
	if err != nil || v.KeyHash() != c.KeyHash() {
		t.Errorf("NewVerifierForCosignatureV1(%q) = %v, key hash %x; want key hash %x", c.VerifierKey(), err, v.KeyHash(), c.KeyHash())
	}
}
