package witness_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigstore/sigstore/pkg/signature"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/internal/prooftest"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/witness"
)

var bg = context.Background()

// ledgerLog adapts a ledger to witness.Log.
type ledgerLog struct{ *ledger.Ledger }

func (l ledgerLog) LatestCheckpoint() (uint64, []byte, time.Time) {
	cp := l.Latest()
	return cp.Size, cp.Note, cp.SignedAt
}

// newLedger creates a ledger that signs only when asked.
func newLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner("log.example/dist", sv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Create(bg, ledger.Config{
		Dir: t.TempDir(), Origin: "log.example/dist", Signer: s, CheckpointInterval: time.Hour,
		BadgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(bg) })
	return l
}

func grow(t *testing.T, l *ledger.Ledger, n int) uint64 {
	t.Helper()
	es := make([]ledger.Entry, n)
	for i := range es {
		es[i].Data = fmt.Appendf(nil, "entry %d", i)
	}
	if _, err := l.Append(bg, es...); err != nil {
		t.Fatal(err)
	}
	cp, err := l.SignCheckpoint(bg)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// ourWitness is our witness behind its HTTP server on a loopback address
// that survives a restart of the server.
type ourWitness struct {
	t    *testing.T
	w    *witness.Witness
	vkey string
	addr string
	srv  *http.Server
}

func newOurWitness(t *testing.T, name string, l *ledger.Ledger) *ourWitness {
	t.Helper()
	p, err := witness.ParsePolicy([]byte("log " + l.VerifierKey() + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	sv, _, _ := signature.NewED25519SignerVerifier(rand.Reader)
	cs, err := witness.NewCosigner(name, sv, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.Create(bg, witness.Config{Dir: t.TempDir(), Signer: cs, Logs: p.Logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ow := &ourWitness{t: t, w: w, vkey: cs.VerifierKey()}
	ow.start()
	t.Cleanup(ow.stop)
	return ow
}

func (o *ourWitness) url() string { return "http://" + o.addr }

func (o *ourWitness) start() {
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		o.t.Fatal(err)
	}
	o.addr = lis.Addr().String()
	ws, err := api.NewWitness(api.WitnessConfig{Witness: o.w, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		o.t.Fatal(err)
	}
	o.srv = &http.Server{Handler: ws.Handler()}
	go o.srv.Serve(lis)
}

func (o *ourWitness) stop() {
	if o.srv != nil {
		o.srv.Close()
		o.srv = nil
	}
}

// newDistributor starts a distributor for l under policy and stops it when
// the test ends.
func newDistributor(t *testing.T, l *ledger.Ledger, policy string, adjust ...func(*witness.DistributorConfig)) (*witness.Distributor, *prometheus.Registry) {
	t.Helper()
	d, reg, _ := runDistributor(t, l, policy, adjust...)
	return d, reg
}

// runDistributor starts a distributor for l under policy; stop (which
// also runs when the test ends) stops it and waits for Run to return.
func runDistributor(t *testing.T, l *ledger.Ledger, policy string, adjust ...func(*witness.DistributorConfig)) (d *witness.Distributor, reg *prometheus.Registry, stop func()) {
	t.Helper()
	p, err := witness.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	cfg := witness.DistributorConfig{
		Policy: p, Log: ledgerLog{l}, LogVerifier: v, Registerer: reg,
		Poll: 5 * time.Millisecond, Timeout: time.Second, MaxBackoff: 100 * time.Millisecond,
	}
	for _, f := range adjust {
		f(&cfg)
	}
	d, err = witness.NewDistributor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Distributor.Run did not return within 10s of cancel")
		}
	}
	t.Cleanup(stop)
	return d, reg, stop
}

// waitWitnessed waits until the distributor serves a checkpoint of size
// with cosignatures that verify with each of vkeys.
func waitWitnessed(t *testing.T, d *witness.Distributor, l *ledger.Ledger, size uint64, vkeys ...string) []byte {
	t.Helper()
	lv, _ := note.NewVerifier(l.VerifierKey())
	deadline := time.Now().Add(10 * time.Second)
	for {
		cp, err := d.Checkpoint()
		if err == nil && bytes.Contains(cp, fmt.Appendf(nil, "\n%d\n", size)) {
			if _, err := note.Open(cp, note.VerifierList(lv)); err != nil {
				t.Fatalf("Checkpoint() = %q: the log's signature: %v", cp, err)
			}
			all := true
			for _, vk := range vkeys {
				wv, err := fnote.NewVerifierForCosignatureV1(vk)
				if err != nil {
					t.Fatal(err)
				}
				_, err = note.Open(cp, note.VerifierList(wv)) // fails if absent, or if it does not verify
				all = all && err == nil
			}
			if all {
				return cp
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no witnessed checkpoint of size %d within 10s: last %q, %v; status %+v", size, cp, err, d.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func policyOf(l *ledger.Ledger, quorum string, ws ...*ourWitness) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log %s\n", l.VerifierKey())
	for i, w := range ws {
		fmt.Fprintf(&b, "witness w%d %s %s\n", i+1, w.vkey, w.url())
	}
	b.WriteString(quorum + "\n")
	return b.String()
}

// TestDistributorQuorum: the log pushes to two of our witnesses on
// loopback and serves the checkpoint once both cosigned.
func TestDistributorQuorum(t *testing.T) {
	l := newLedger(t)
	w1 := newOurWitness(t, "w1.example", l)
	w2 := newOurWitness(t, "w2.example", l)
	d, reg := newDistributor(t, l, policyOf(l, "group both all w1 w2\nquorum both", w1, w2))
	waitWitnessed(t, d, l, 0, w1.vkey, w2.vkey)
	for _, n := range []int{5, 300, 1} {
		size := grow(t, l, n)
		cp := waitWitnessed(t, d, l, size, w1.vkey, w2.vkey)
		if got := bytes.Count(cp, []byte("\n— ")); got != 3 {
			t.Errorf("Checkpoint() has %d signature lines, want the log's and two cosignatures:\n%s", got, cp)
		}
	}
	for _, s := range d.Status() {
		if s.CosignedSize != 306 || s.Size != 306 || s.ConsecutiveFailures != 0 {
			t.Errorf("Status() = %+v, want cosigned at 306", s)
		}
	}
	if got := sumMetric(t, reg, "accessledger_witness_quorum_size"); got != 306 {
		t.Errorf("accessledger_witness_quorum_size = %v, want 306", got)
	}
}

// sumMetric sums the values of a gauge or counter family.
func sumMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// TestDownWitnessCatchesUp: with one witness down, appends go on and the
// quorum of the other is met; when it comes back after the log restarted
// (so the log believes it is at 0), it answers 409 with its size, gets a
// consistency proof and cosigns.
func TestDownWitnessCatchesUp(t *testing.T) {
	l := newLedger(t)
	w1 := newOurWitness(t, "w1.example", l)
	w2 := newOurWitness(t, "w2.example", l)
	policy := policyOf(l, "group any1 any w1 w2\nquorum any1", w1, w2)
	d, _ := newDistributor(t, l, policy)
	size := grow(t, l, 10)
	waitWitnessed(t, d, l, size, w1.vkey, w2.vkey)

	w2.stop()
	size = grow(t, l, 10)
	waitWitnessed(t, d, l, size, w1.vkey) // w1 alone meets "any"
	deadline := time.Now().Add(5 * time.Second)
	for d.Status()[1].ConsecutiveFailures == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := d.Status()[1]; st.ConsecutiveFailures == 0 || st.LastError == "" || st.CosignedSize != 10 {
		t.Errorf("Status() of the down witness = %+v, want failures, an error and cosigned size 10", st)
	}

	// The log restarts (a new distributor starts from size 0) and the
	// witness comes back.
	size = grow(t, l, 5)
	d2, reg2 := newDistributor(t, l, policy)
	w2.start()
	waitWitnessed(t, d2, l, size, w1.vkey, w2.vkey)
	if got := sumMetric(t, reg2, "accessledger_witness_requests_total"); got < 4 {
		t.Errorf("requests = %v, want at least a 409 and a 200 per witness", got)
	}
	if st := d2.Status()[1]; st.Size != size || st.CosignedSize != size {
		t.Errorf("Status() after the return = %+v, want cosigned at %d", st, size)
	}
}

// fakeWitness serves add-checkpoint with handle.
func fakeWitness(t *testing.T, handle func(req witness.AddRequest) (int, string, []byte)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := witness.ParseAddRequest(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		status, ctype, out := handle(req)
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// cosignWith answers 200 with a cosignature by s of the checkpoint.
func cosignWith(t *testing.T, s note.Signer, cp []byte) []byte {
	text := cp[:bytes.Index(cp, []byte("\n\n"))+1]
	signed, err := note.Sign(&note.Note{Text: string(text)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return signed[len(text)+1:]
}

// TestFormatsCosignaturesAccepted: the log accepts cosignatures made by
// transparency-dev/formats NewSignerForCosignatureV1, and refuses a
// witness whose cosignature does not verify.
func TestFormatsCosignaturesAccepted(t *testing.T) {
	l := newLedger(t)
	fs, cvkey := prooftest.WitnessKey(t, "formats.example/w")
	good := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		return 200, "text/plain", cosignWith(t, fs, req.Checkpoint)
	})
	bs, liarKey := prooftest.WitnessKey(t, "liar.example/w")
	liar := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		line := cosignWith(t, bs, req.Checkpoint)
		line[len(line)-5] ^= 1 // corrupt the signature
		return 200, "text/plain", line
	})
	policy := fmt.Sprintf("witness good %s %s\nwitness liar %s %s\ngroup g all good liar\nquorum good\n", cvkey, good.URL, liarKey, liar.URL)
	d, _ := newDistributor(t, l, policy)
	size := grow(t, l, 3)
	cp := waitWitnessed(t, d, l, size, cvkey)
	if bytes.Contains(cp, []byte("liar.example")) {
		t.Errorf("Checkpoint() = %q, kept a cosignature that does not verify", cp)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Status()[1].LastError == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := d.Status()[1]; !strings.Contains(st.LastError, "does not verify") {
		t.Errorf("Status() of the liar = %+v, want a cosignature that does not verify", st)
	}
}

// TestWitnessAnswerWithAnExtraLine: a 200 that holds a line other than
// signature lines is refused, naming the line; the log said only
// "malformed note".
func TestWitnessAnswerWithAnExtraLine(t *testing.T) {
	l := newLedger(t)
	fs, cvkey := prooftest.WitnessKey(t, "chatty.example/w")
	chatty := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		return 200, "text/plain", append(cosignWith(t, fs, req.Checkpoint), "thanks!\n"...)
	})
	d, _ := newDistributor(t, l, fmt.Sprintf("log %s\nwitness chatty %s %s\nquorum none\n", l.VerifierKey(), cvkey, chatty.URL))
	grow(t, l, 3)
	deadline := time.Now().Add(10 * time.Second)
	for d.Status()[0].LastError == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := d.Status()[0]; !strings.Contains(st.LastError, "not a signature line") || !strings.Contains(st.LastError, "thanks!") {
		t.Errorf("Status() = %+v, want an error naming the line that is not a signature", st)
	}
}

// TestWitnessAskedAgainAfterABadSize: a witness that once answers 409
// with a size beyond the log's is asked again (with old 0) and, once it
// answers right, cosigns. The log stopped sending to it at all, until it
// restarted. Its word that the log is behind stands (Behind): the log
// cannot tell a lie from a loss.
func TestWitnessAskedAgainAfterABadSize(t *testing.T) {
	l := newLedger(t)
	fs, cvkey := prooftest.WitnessKey(t, "flaky.example/w")
	var calls atomic.Int32
	flaky := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		if calls.Add(1) == 1 {
			return 409, "text/x.tlog.size", []byte("18446744073709551615\n")
		}
		if req.OldSize != 0 {
			return 409, "text/x.tlog.size", []byte("0\n")
		}
		return 200, "text/plain", cosignWith(t, fs, req.Checkpoint)
	})
	d, _ := newDistributor(t, l, fmt.Sprintf("log %s\nwitness flaky %s %s\nquorum flaky\n", l.VerifierKey(), cvkey, flaky.URL))
	size := grow(t, l, 3)
	waitWitnessed(t, d, l, size, cvkey)
	if n := calls.Load(); n < 2 {
		t.Errorf("the witness got %d requests, want it asked again", n)
	}
	if err := d.Behind(); !errors.Is(err, witness.ErrLogBehind) {
		t.Errorf("Behind() = %v, want ErrLogBehind", err)
	}
}

// TestFailOpenAndSlowWitness: a witness that never answers in time holds
// up neither the other witness nor the log; without fail-open nothing is
// served until the quorum is met, with it the latest checkpoint is.
func TestFailOpenAndSlowWitness(t *testing.T) {
	l := newLedger(t)
	w1 := newOurWitness(t, "w1.example", l)
	var calls atomic.Int64
	block := make(chan struct{})
	defer close(block)
	slow := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		calls.Add(1)
		<-block
		return 500, "text/plain", nil
	})
	_, slowKey, _ := note.GenerateKey(rand.Reader, "slow.example/w")
	slowV, _ := fnote.VKeyToCosignatureV1(slowKey)
	policy := fmt.Sprintf("witness w1 %s %s\nwitness slow %s %s\ngroup g all w1 slow\nquorum g\n", w1.vkey, w1.url(), slowV, slow.URL)
	// The timeout applies to w1 too, whose answer takes a synced commit:
	// a second leaves it room on a loaded machine; the slow one never
	// answers at all.
	closed, _ := newDistributor(t, l, policy, func(c *witness.DistributorConfig) { c.Timeout = time.Second })
	open, _ := newDistributor(t, l, policy, func(c *witness.DistributorConfig) { c.Timeout = time.Second; c.FailOpen = true })
	size := grow(t, l, 4)
	cp := waitWitnessed(t, open, l, size, w1.vkey) // fail-open: the latest, with w1's cosignature
	if !bytes.Contains(cp, []byte("— w1.example ")) {
		t.Errorf("fail-open Checkpoint() = %q, want w1's cosignature", cp)
	}
	if _, err := closed.Checkpoint(); !errors.Is(err, witness.ErrNoQuorum) {
		t.Errorf("Checkpoint() without quorum = %v, want ErrNoQuorum", err)
	}
	// w1 cosigned for both distributors although the other witness hangs.
	deadline := time.Now().Add(20 * time.Second)
	for (closed.Status()[0].CosignedSize != size || closed.Status()[1].ConsecutiveFailures == 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := closed.Status(); st[0].CosignedSize != size || st[1].ConsecutiveFailures == 0 {
		t.Errorf("Status() = %+v, want w1 cosigned at %d and the slow one failing", st, size)
	}
	if grow(t, l, 1) != size+1 {
		t.Error("appends stopped")
	}
}

// TestWitnessedCheckpointSurvivesRestart: the newest witnessed checkpoint
// is served again right after a restart, before any witness answers.
func TestWitnessedCheckpointSurvivesRestart(t *testing.T) {
	l := newLedger(t)
	w1 := newOurWitness(t, "w1.example", l)
	policy := policyOf(l, "quorum w1", w1)
	state := filepath.Join(t.TempDir(), "witnessed.checkpoint")
	withState := func(c *witness.DistributorConfig) { c.StateFile = state }
	d, _ := newDistributor(t, l, policy, withState)
	size := grow(t, l, 3)
	want := waitWitnessed(t, d, l, size, w1.vkey)
	w1.stop()
	d2, _ := newDistributor(t, l, policy, withState)
	if got, err := d2.Checkpoint(); err != nil || !bytes.Equal(got, want) {
		t.Errorf("Checkpoint() after a restart = %q, %v; want %q", got, err, want)
	}
	// A saved checkpoint that no longer meets the policy is not served.
	other := newOurWitness(t, "w2.example", l)
	d3, _ := newDistributor(t, l, policyOf(l, "quorum w1", other), withState)
	if got, err := d3.Checkpoint(); !errors.Is(err, witness.ErrNoQuorum) {
		t.Errorf("Checkpoint() under another policy = %q, %v; want ErrNoQuorum", got, err)
	}
}

// openLedger opens (or, with create, creates) the ledger in dir, signed by
// s, and closes it when the test ends unless the test closed it first.
func openLedger(t *testing.T, dir string, s ledger.Signer, create bool) *ledger.Ledger {
	t.Helper()
	cfg := ledger.Config{
		Dir: dir, Origin: s.Name(), Signer: s, CheckpointInterval: time.Hour,
		BadgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).WithIndexCacheSize(4 << 20)
		},
	}
	open := ledger.Open
	if create {
		open = ledger.Create
	}
	l, err := open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(bg) })
	return l
}

// withHalt makes the distributor stop l's appends and record it in file.
func withHalt(l *ledger.Ledger, file string) func(*witness.DistributorConfig) {
	return func(c *witness.DistributorConfig) { c.OnBehind, c.BehindFile = l.Halt, file }
}

// startFirstRound starts a distributor, as runDistributor does, and
// waits for its first round.
func startFirstRound(t *testing.T, l *ledger.Ledger, policy string, adjust ...func(*witness.DistributorConfig)) (*witness.Distributor, *prometheus.Registry, func(), error) {
	t.Helper()
	d, reg, stop := runDistributor(t, l, policy, adjust...)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	return d, reg, stop, d.WaitFirstRound(ctx)
}

// closeAfter stops the distributor, then closes the ledger.
func closeAfter(t *testing.T, stop func(), l *ledger.Ledger) {
	t.Helper()
	stop()
	if err := l.Close(bg); err != nil {
		t.Fatal(err)
	}
}

// TestRestoredBackupRefusesAppends is the reviewer's reproduction: a log
// copied while stopped (a backup), then appended to and cosigned by its
// witness beyond the copy, is restored from the copy. It used to start,
// take the next event at the index of the acknowledged one it lost, and
// fork under its own key. Now the witness's 409 stops its appends before
// it takes any, and the record of it keeps them stopped after a restart
// even with the witness down.
func TestRestoredBackupRefusesAppends(t *testing.T) {
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner("log.example/restore", sv)
	if err != nil {
		t.Fatal(err)
	}
	dir, backup := t.TempDir(), filepath.Join(t.TempDir(), "backup")
	record := filepath.Join(t.TempDir(), "log.behind")
	l := openLedger(t, dir, s, true)
	w1 := newOurWitness(t, "w1.example", l)
	policy := policyOf(l, "quorum w1", w1)
	d, _, stop := runDistributor(t, l, policy, withHalt(l, record))
	size := grow(t, l, 5)
	waitWitnessed(t, d, l, size, w1.vkey)
	closeAfter(t, stop, l)
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}

	// The acknowledged event the restore loses, cosigned.
	l = openLedger(t, dir, s, false)
	d, _, stop = runDistributor(t, l, policy, withHalt(l, record))
	lost := grow(t, l, 1)
	waitWitnessed(t, d, l, lost, w1.vkey)
	closeAfter(t, stop, l)

	// Restored from the backup.
	l = openLedger(t, backup, s, false)
	d, reg, stop, err := startFirstRound(t, l, policy, withHalt(l, record))
	var be *witness.BehindError
	if !errors.As(err, &be) || be.Witness != "w1" || be.Size != lost || be.LogSize != size || be.Inconsistent {
		t.Fatalf("WaitFirstRound() after the restore = %v, want w1 behind at %d (log at %d)", err, lost, size)
	}
	_, err = l.Append(bg, ledger.Entry{Data: []byte("another event at the lost index")})
	if !errors.Is(err, ledger.ErrHalted) || !errors.Is(err, witness.ErrLogBehind) {
		t.Fatalf("Append() after the restore = %v, want ErrHalted with ErrLogBehind", err)
	}
	if got, _ := l.Size(); got != size {
		t.Errorf("Size() = %d, want %d: the restored log took an event at the lost index", got, size)
	}
	if got := sumMetric(t, reg, "accessledger_witness_log_behind"); got != 1 {
		t.Errorf("accessledger_witness_log_behind = %v, want 1", got)
	}
	if err := d.Behind(); !errors.Is(err, witness.ErrLogBehind) {
		t.Errorf("Behind() = %v, want ErrLogBehind", err)
	}

	// Restarted with the witness down: the record stops it at once.
	closeAfter(t, stop, l)
	w1.stop()
	l = openLedger(t, backup, s, false)
	if _, _, _, err := startFirstRound(t, l, policy, withHalt(l, record)); !errors.As(err, &be) || be.Size != lost {
		t.Errorf("WaitFirstRound() after a restart with the witness down = %v, want w1 behind at %d", err, lost)
	}
	if _, err := l.Append(bg, ledger.Entry{Data: []byte("another event at the lost index")}); !errors.Is(err, ledger.ErrHalted) {
		t.Errorf("Append() after a restart with the witness down = %v, want ErrHalted", err)
	}

	// The copy that holds the lost event is restored instead: the record
	// no longer applies, and the log appends under the witness again.
	closeAfter(t, stop, l)
	w1.start()
	l = openLedger(t, dir, s, false)
	d, _, _, err = startFirstRound(t, l, policy, withHalt(l, record))
	if err != nil {
		t.Fatalf("WaitFirstRound() with the lost event restored = %v, want nil", err)
	}
	if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s) with the lost event restored = %v, want the record removed", record, err)
	}
	waitWitnessed(t, d, l, grow(t, l, 1), w1.vkey)
}

// TestForkedRestoreStopsAppends: a restored log that took events before
// its witness was asked (it grew past the size the witness cosigned, with
// other entries) is refused by the witness (422 for our witness, 409
// naming the size sent for a witness that finds another root at it, as
// C2SP tlog-witness has it), and that stops its appends too.
func TestForkedRestoreStopsAppends(t *testing.T) {
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner("log.example/fork", sv)
	if err != nil {
		t.Fatal(err)
	}
	l := openLedger(t, t.TempDir(), s, true)
	w1 := newOurWitness(t, "w1.example", l)
	d, _, stop := runDistributor(t, l, policyOf(l, "quorum w1", w1))
	waitWitnessed(t, d, l, grow(t, l, 5), w1.vkey)
	closeAfter(t, stop, l)

	// Another log under the same key (what a restored backup that took
	// events becomes): 6 other entries; and the same at 5 entries.
	for _, n := range []int{6, 5} {
		fork := openLedger(t, t.TempDir(), s, true)
		es := make([]ledger.Entry, n)
		for i := range es {
			es[i].Data = fmt.Appendf(nil, "other entry %d", i)
		}
		if _, err := fork.Append(bg, es...); err != nil {
			t.Fatal(err)
		}
		if _, err := fork.SignCheckpoint(bg); err != nil {
			t.Fatal(err)
		}
		_, _, stop, err := startFirstRound(t, fork, policyOf(fork, "quorum w1", w1), withHalt(fork, filepath.Join(t.TempDir(), "behind")))
		var be *witness.BehindError
		if !errors.As(err, &be) || !be.Inconsistent || be.Size != 5 || be.LogSize != uint64(n) {
			t.Errorf("WaitFirstRound() for a fork of size %d = %v, want w1 refusing it as inconsistent with size 5", n, err)
		}
		if _, err := fork.Append(bg, ledger.Entry{Data: []byte("more")}); !errors.Is(err, ledger.ErrHalted) {
			t.Errorf("Append() to a fork of size %d = %v, want ErrHalted", n, err)
		}
		closeAfter(t, stop, fork)
	}

	// A tlog-witness that answers 409 with the size sent for another
	// root at that size.
	fork := openLedger(t, t.TempDir(), s, true)
	grow(t, fork, 5)
	_, cvkey := prooftest.WitnessKey(t, "spec.example/w")
	spec := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		return 409, "text/x.tlog.size", []byte("5\n")
	})
	_, _, _, err = startFirstRound(t, fork, fmt.Sprintf("witness spec %s %s\nquorum spec\n", cvkey, spec.URL), withHalt(fork, ""))
	if be := (*witness.BehindError)(nil); !errors.As(err, &be) || !be.Inconsistent || be.Size != 5 {
		t.Errorf("WaitFirstRound() with a 409 naming the size sent = %v, want the witness refusing it as inconsistent", err)
	}
}

// TestSavedWitnessedCheckpointBeyondTheLog: a log whose storage was
// restored without the saved witnessed checkpoint (the README restores
// badger/ alone) is stopped before any witness is asked: the checkpoint
// carries the log's signature and the quorum's cosignatures at a size
// the log does not reach.
func TestSavedWitnessedCheckpointBeyondTheLog(t *testing.T) {
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner("log.example/saved", sv)
	if err != nil {
		t.Fatal(err)
	}
	dir, backup := t.TempDir(), filepath.Join(t.TempDir(), "backup")
	state := filepath.Join(t.TempDir(), "witnessed.checkpoint")
	withState := func(c *witness.DistributorConfig) { c.StateFile = state }
	l := openLedger(t, dir, s, true)
	grow(t, l, 3)
	if err := l.Close(bg); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	l = openLedger(t, dir, s, false)
	w1 := newOurWitness(t, "w1.example", l)
	policy := policyOf(l, "quorum w1", w1)
	d, _, stop := runDistributor(t, l, policy, withState)
	waitWitnessed(t, d, l, grow(t, l, 2), w1.vkey)
	closeAfter(t, stop, l)
	w1.stop()

	l = openLedger(t, backup, s, false)
	var halted error
	d, _, _ = runDistributor(t, l, policy, withState, func(c *witness.DistributorConfig) { c.OnBehind = func(err error) { halted = err } })
	var be *witness.BehindError
	if !errors.As(halted, &be) || be.Witness != "" || be.Size != 5 || be.LogSize != 3 {
		t.Errorf("OnBehind from NewDistributor got %v, want the saved checkpoint of size 5 beyond the log's 3", halted)
	}
	if !errors.Is(d.Behind(), witness.ErrLogBehind) {
		t.Errorf("Behind() = %v, want ErrLogBehind", d.Behind())
	}
}

// TestRestartAtTheWitnessSizeAppends: a log restarted at the size its
// witness cosigned (the witness's 409 names the log's own size) is not
// behind, and appends and is cosigned as before.
func TestRestartAtTheWitnessSizeAppends(t *testing.T) {
	l := newLedger(t)
	w1 := newOurWitness(t, "w1.example", l)
	policy := policyOf(l, "quorum w1", w1)
	record := filepath.Join(t.TempDir(), "log.behind")
	d, _, stop := runDistributor(t, l, policy, withHalt(l, record))
	size := grow(t, l, 5)
	waitWitnessed(t, d, l, size, w1.vkey)
	stop()

	d, reg, _, err := startFirstRound(t, l, policy, withHalt(l, record))
	if err != nil {
		t.Fatalf("WaitFirstRound() after a restart at the witness's size = %v, want nil", err)
	}
	size = grow(t, l, 2)
	waitWitnessed(t, d, l, size, w1.vkey)
	if got := sumMetric(t, reg, "accessledger_witness_log_behind"); got != 0 {
		t.Errorf("accessledger_witness_log_behind = %v, want 0", got)
	}
	if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s) = %v, want no record", record, err)
	}
}

// TestFirstRoundWaitsForAnAnswer is the reviewer's reproduction: the
// first round ended with the first push, failed or not, so that a
// witness behind a proxy answering 503 (or down, or a 429) let the log
// take events at once, before the witness said the log was behind. Now
// only an answer the witness decided on ends its first round; the
// transient failures are retried meanwhile.
func TestFirstRoundWaitsForAnAnswer(t *testing.T) {
	l := newLedger(t)
	grow(t, l, 3)
	_, cvkey := prooftest.WitnessKey(t, "restarting.example/w")
	up := time.Now().Add(time.Second)
	w := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		if time.Now().Before(up) {
			return 503, "text/plain", []byte("backend restarting\n")
		}
		return 409, "text/x.tlog.size", []byte("100\n")
	})
	d, _, _ := runDistributor(t, l, fmt.Sprintf("witness w %s %s\nquorum w\n", cvkey, w.URL),
		withHalt(l, filepath.Join(t.TempDir(), "log.behind")),
		func(c *witness.DistributorConfig) { c.Timeout = 2 * time.Second })
	ctx, cancel := context.WithTimeout(bg, 4*time.Second)
	defer cancel()
	err := d.WaitFirstRound(ctx)
	if _, aerr := l.Append(bg, ledger.Entry{Data: []byte("x")}); aerr == nil {
		t.Errorf("the log took an event (WaitFirstRound() = %v)", err)
	}
	if !errors.Is(err, witness.ErrLogBehind) {
		t.Errorf("WaitFirstRound() = %v, want ErrLogBehind", err)
	}
}

// TestFirstRoundUnanswered: a witness that never answers (black-holed,
// refusing connections, or always 5xx or 429) keeps WaitFirstRound
// waiting until its ctx ends, which it then returns, and Unanswered
// names it; a witness that answered is not named.
func TestFirstRoundUnanswered(t *testing.T) {
	block := make(chan struct{})
	hung := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		<-block
		return 500, "text/plain", nil
	})
	defer close(block) // before hung.Close, which waits for its handlers
	overloaded := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		return 429, "text/plain", []byte("slow down\n")
	})
	bad := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		return 502, "text/html", []byte("<html>Bad Gateway</html>")
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + lis.Addr().String()
	lis.Close()
	for _, tc := range []struct{ name, url string }{
		{"black-holed", hung.URL},
		{"refused", closedURL},
		{"429", overloaded.URL},
		{"502", bad.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(t)
			grow(t, l, 3)
			w1 := newOurWitness(t, "w1.example", l)
			_, cvkey := prooftest.WitnessKey(t, "silent.example/w")
			policy := fmt.Sprintf("witness w1 %s %s\nwitness silent %s %s\nquorum w1\n", w1.vkey, w1.url(), cvkey, tc.url)
			d, _, _ := runDistributor(t, l, policy, func(c *witness.DistributorConfig) { c.Timeout = time.Second })
			ctx, cancel := context.WithTimeout(bg, 2*time.Second)
			defer cancel()
			start := time.Now()
			err := d.WaitFirstRound(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitFirstRound() = %v after %v, want context.DeadlineExceeded", err, time.Since(start).Round(time.Millisecond))
			}
			if got := d.Unanswered(); len(got) != 1 || got[0] != "silent" {
				t.Errorf("Unanswered() = %q, want [silent]", got)
			}
		})
	}
}

// TestFirstRoundRetriesOnlyWhileWaited: a witness that answers 503 is
// asked again every quarter-second or so while WaitFirstRound waits for
// it, and with the growing backoff once nobody waits: a witness down for
// hours is not asked four times a second.
func TestFirstRoundRetriesOnlyWhileWaited(t *testing.T) {
	l := newLedger(t)
	grow(t, l, 3)
	var calls atomic.Int64
	down := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		calls.Add(1)
		return 503, "text/plain", []byte("down\n")
	})
	_, cvkey := prooftest.WitnessKey(t, "down.example/w")
	d, _, _ := runDistributor(t, l, fmt.Sprintf("witness down %s %s\nquorum down\n", cvkey, down.URL),
		func(c *witness.DistributorConfig) { c.MaxBackoff = time.Minute })
	ctx, cancel := context.WithTimeout(bg, 1500*time.Millisecond)
	defer cancel()
	if err := d.WaitFirstRound(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFirstRound() = %v, want context.DeadlineExceeded", err)
	}
	waited := calls.Load()
	if waited < 4 {
		t.Errorf("%d requests while WaitFirstRound waited 1.5s, want one every quarter-second or so", waited)
	}
	time.Sleep(1500 * time.Millisecond)
	if after := calls.Load() - waited; after > 1 {
		t.Errorf("%d requests in the 1.5s after the wait (after %d failures), want at most 1: the backoff grows once nobody waits", after, waited)
	}
}

// TestWitnessAheadOfTheCheckpointNotOfTheLog: a witness that cosigned a
// size beyond the log's latest checkpoint but within the entries the log
// holds (a snapshot restored between a commit and the checkpoint over it,
// when serve's signature at start failed) does not halt the log: the
// distributor signs what the log holds (SignDurable) and sends that, and
// the witness judges the tree. It took the log for one behind it, halted
// for good (found by review).
func TestWitnessAheadOfTheCheckpointNotOfTheLog(t *testing.T) {
	l := newLedger(t)
	grow(t, l, 3) // signed at 3
	if _, err := l.Append(bg, ledger.Entry{Data: []byte("d")}, ledger.Entry{Data: []byte("e")}); err != nil {
		t.Fatal(err) // durable at 5, not signed
	}
	ws, wvkey := prooftest.WitnessKey(t, "ahead.example/w")
	w := fakeWitness(t, func(req witness.AddRequest) (int, string, []byte) {
		if !bytes.Contains(req.Checkpoint, []byte("\n5\n")) {
			return 409, "text/x.tlog.size", []byte("5\n") // it cosigned 5 before
		}
		return 200, "text/plain", cosignWith(t, ws, req.Checkpoint)
	})
	var halted atomic.Pointer[error]
	d, _, _ := runDistributor(t, l, fmt.Sprintf("witness w %s %s\nquorum w\n", wvkey, w.URL), func(c *witness.DistributorConfig) {
		c.OnBehind = func(err error) { halted.Store(&err) }
		c.SignDurable = l.SignDurable
	})
	waitWitnessed(t, d, l, 5, wvkey)
	if err := halted.Load(); err != nil {
		t.Errorf("the log was halted: %v", *err)
	}
}
