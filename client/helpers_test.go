package client_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

const testOrigin = "example.com/accessledger/client-test"

var bg = context.Background()

// testLog is a real ledger behind the real API on loopback.
type testLog struct {
	l       *ledger.Ledger
	srv     *httptest.Server
	token   string // submitter and auditor
	handler http.Handler
}

// newSigner returns a checkpoint signer over a fresh key.
func newSigner(t testing.TB) *ledger.NoteSigner {
	t.Helper()
	sv, _, err := signature.NewED25519SignerVerifier(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.NewNoteSigner(testOrigin, sv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newTestLog starts a ledger and its API; wrap, if set, wraps the API's
// handler (to inject faults).
func newTestLog(t testing.TB, signer *ledger.NoteSigner, wrap func(http.Handler) http.Handler) *testLog {
	t.Helper()
	if signer == nil {
		signer = newSigner(t)
	}
	l, err := ledger.Create(bg, ledger.Config{Dir: t.TempDir(), Origin: testOrigin, Signer: signer, CheckpointInterval: 20 * time.Millisecond,
		BadgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20)
		}})
	if err != nil {
		t.Fatalf("ledger.Create() = %v", err)
	}
	token, key, err := api.NewAPIKey("client-test", api.RoleSubmitter, api.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := api.NewKeyring([]api.APIKey{key})
	if err != nil {
		t.Fatal(err)
	}
	s, err := api.New(api.Config{Ledger: l, Keys: kr})
	if err != nil {
		t.Fatalf("api.New() = %v", err)
	}
	h := s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if err := l.Close(bg); err != nil {
			t.Errorf("Ledger.Close() = %v", err)
		}
	})
	return &testLog{l: l, srv: srv, token: token, handler: h}
}

// leaf is an entry of the log, decoded.
type leaf struct {
	Kind string      `json:"kind"`
	Body event.Event `json:"body"`
}

// entries reads every entry of the log.
func (tl *testLog) entries(t testing.TB) []leaf {
	t.Helper()
	size, _ := tl.l.Size()
	var out []leaf
	for b := uint64(0); b*256 < size; b++ {
		w := 0
		if size-b*256 < 256 {
			w = int(size - b*256)
		}
		raw, err := tl.l.ReadEntryBundle(bg, b, w)
		if err != nil {
			t.Fatalf("ReadEntryBundle(%d) = %v", b, err)
		}
		for len(raw) >= 2 {
			n := int(binary.BigEndian.Uint16(raw))
			var lf leaf
			if err := json.Unmarshal(raw[2:2+n], &lf); err != nil {
				t.Fatalf("entry %d: %v", len(out), err)
			}
			out = append(out, lf)
			raw = raw[2+n:]
		}
	}
	return out
}
