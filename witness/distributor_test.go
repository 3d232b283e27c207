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
	p, err := witness.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := witness.DistributorConfig{
		Policy: p, Log: ledgerLog{l}, LogVerifier: v, Registerer: reg,
		Poll: 5 * time.Millisecond, Timeout: time.Second, MaxBackoff: 100 * time.Millisecond,
	}
	for _, f := range adjust {
		f(&cfg)
	}
	d, err := witness.NewDistributor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Distributor.Run did not return within 10s of cancel")
		}
	})
	return d, reg
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
// restarted.
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
