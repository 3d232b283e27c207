package witness

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLog is an in-memory RFC 6962 log with an Ed25519 checkpoint key,
// built with golang.org/x/mod/sumdb/tlog (not our code).
type testLog struct {
	t      testing.TB
	origin string
	signer note.Signer
	vkey   string
	mu     sync.Mutex
	hashes []tlog.Hash // stored hashes (tlog.StoredHashes layout)
	n      int64
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	return newTestLogWithKey(t, origin, skey, vkey)
}

// newTestLogWithKey makes a log with a given key: two logs with the same
// key and different entries are a fork.
func newTestLogWithKey(t testing.TB, origin, skey, vkey string) *testLog {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, origin: origin, signer: s, vkey: vkey}
}

// append adds n entries derived from seed.
func (l *testLog) append(n int, seed string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < n; i++ {
		data := fmt.Appendf(nil, "%s %d", seed, l.n)
		hs, err := tlog.StoredHashes(l.n, data, l)
		if err != nil {
			l.t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.n++
	}
}

// ReadHashes implements tlog.HashReader. The caller holds mu.
func (l *testLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(l.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = l.hashes[x]
	}
	return out, nil
}

func (l *testLog) root(size int64) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := tlog.TreeHash(size, l)
	if err != nil {
		l.t.Fatal(err)
	}
	return h[:]
}

// checkpoint returns the signed checkpoint of the tree at size.
func (l *testLog) checkpoint(size int64) []byte {
	return l.sign(l.checkpointText(size))
}

// checkpointText returns the checkpoint of the tree at size, unsigned.
func (l *testLog) checkpointText(size int64) []byte {
	return log.Checkpoint{Origin: l.origin, Size: uint64(size), Hash: l.root(size)}.Marshal()
}

func (l *testLog) sign(text []byte) []byte {
	signed, err := note.Sign(&note.Note{Text: string(text)}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return signed
}

// proof returns the consistency proof from old to size.
func (l *testLog) proof(old, size int64) [][]byte {
	if old == 0 || old >= size {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := tlog.ProveTree(size, old, l)
	if err != nil {
		l.t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// request is a well-formed add-checkpoint request from old to size.
func (l *testLog) request(old, size int64) AddRequest {
	return AddRequest{OldSize: uint64(old), Proof: l.proof(old, size), Checkpoint: l.checkpoint(size)}
}

func (l *testLog) policyLog() PolicyLog {
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		l.t.Fatal(err)
	}
	return PolicyLog{Origin: l.origin, VKey: l.vkey, Verifier: v}
}

// testCosigner returns a cosigner with a fresh key and a fixed clock.
func testCosigner(t testing.TB, name string) *Cosigner {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCosigner(name, sv, func() time.Time { return time.Unix(1_700_000_000, 0) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestWitness creates a witness in a temporary directory trusting logs.
func newTestWitness(t testing.TB, logs ...*testLog) *Witness {
	t.Helper()
	return newTestWitnessIn(t, t.TempDir(), logs...)
}

func newTestWitnessIn(t testing.TB, dir string, logs ...*testLog) *Witness {
	t.Helper()
	cfg := Config{Dir: dir, Signer: testCosigner(t, "witness.example/w1")}
	for _, l := range logs {
		cfg.Logs = append(cfg.Logs, l.policyLog())
	}
	w, err := Create(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}
