package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/client/evidence"
)

// Errors the Auditor returns; callers branch on them with errors.Is.
var (
	// ErrBadCheckpoint means a checkpoint is not signed by the log's key
	// or is not a checkpoint of the log.
	ErrBadCheckpoint = errors.New("client: checkpoint does not verify")
	// ErrInconsistent means the log is not an extension of the checkpoint
	// trusted before (a fork, a rewrite, or a split view): keep the
	// evidence, it proves misbehaviour.
	ErrInconsistent = errors.New("client: log is inconsistent with the trusted checkpoint")
	// ErrNotIncluded means an inclusion proof does not verify.
	ErrNotIncluded = errors.New("client: entry not proven in the log")
)

// Checkpoint is a verified checkpoint of the log.
type Checkpoint struct {
	Origin   string
	Size     uint64
	RootHash []byte
	// Note is the signed note, as served.
	Note []byte
}

// AuditorConfig configures an Auditor. URL and VerifierKey are required.
type AuditorConfig struct {
	// URL is the server's base URL.
	URL string
	// APIKey is a key with the submitter or auditor role (auditor to
	// read entries); empty if the server serves proofs publicly.
	APIKey string
	// VerifierKey is the log's verifier key, obtained out of band.
	VerifierKey string
	// StateFile keeps the last trusted checkpoint across runs, so that
	// each run proves the log only grew since the previous one. Empty:
	// the Auditor trusts only what it verified since it was made.
	StateFile string
	// HTTPClient sends the requests (default: a 30s timeout).
	HTTPClient *http.Client
}

// Auditor fetches and verifies the log's checkpoints and proofs. It keeps
// the newest checkpoint it verified (in StateFile, if set) and accepts a
// new one only with a consistency proof from it. Its methods are safe for
// concurrent use.
type Auditor struct {
	cfg     AuditorConfig
	v       note.Verifier
	mu      sync.Mutex
	trusted *Checkpoint // nil before the first
}

// NewAuditor returns an Auditor, loading the trusted checkpoint from
// cfg.StateFile if it exists (and verifying it again).
func NewAuditor(cfg AuditorConfig) (*Auditor, error) {
	if cfg.URL == "" || cfg.VerifierKey == "" {
		return nil, errors.New("client: AuditorConfig.URL and VerifierKey are required")
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	v, err := note.NewVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("client: verifier key: %w", err)
	}
	a := &Auditor{cfg: cfg, v: v}
	if cfg.StateFile != "" {
		raw, err := os.ReadFile(cfg.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("client: reading trusted state: %w", err)
		default:
			var st struct {
				Checkpoint string `json:"checkpoint"`
			}
			if err := json.Unmarshal(raw, &st); err != nil {
				return nil, fmt.Errorf("client: trusted state %s: %w", cfg.StateFile, err)
			}
			cp, err := a.parse([]byte(st.Checkpoint))
			if err != nil {
				return nil, fmt.Errorf("client: trusted state %s: %w", cfg.StateFile, err)
			}
			a.trusted = cp
		}
	}
	return a, nil
}

// Trusted returns the newest checkpoint verified so far, nil if none.
func (a *Auditor) Trusted() *Checkpoint {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.trusted
}

func (a *Auditor) parse(raw []byte) (*Checkpoint, error) {
	c, _, _, err := log.ParseCheckpoint(raw, a.v.Name(), a.v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	return &Checkpoint{Origin: c.Origin, Size: c.Size, RootHash: c.Hash, Note: raw}, nil
}

// Update fetches the latest checkpoint, verifies its signature and that it
// extends the trusted one (a consistency proof), then trusts it (and saves
// it). A checkpoint older than the trusted one is checked the other way
// and leaves the trusted one in place. It returns the trusted checkpoint.
func (a *Auditor) Update(ctx context.Context) (*Checkpoint, error) {
	raw, err := a.get(ctx, "/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	cp, err := a.parse(raw)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.trusted
	switch {
	case old == nil:
	case cp.Size == old.Size:
		if !bytes.Equal(cp.RootHash, old.RootHash) {
			return nil, fmt.Errorf("%w: two signed checkpoints of size %d with different roots:\n%s\n%s", ErrInconsistent, cp.Size, old.Note, cp.Note)
		}
		return old, nil
	case cp.Size < old.Size:
		if err := a.consistent(ctx, cp, old); err != nil {
			return nil, err
		}
		return old, nil
	default:
		if err := a.consistent(ctx, old, cp); err != nil {
			return nil, err
		}
	}
	if err := a.save(cp); err != nil {
		return nil, err
	}
	a.trusted = cp
	return cp, nil
}

// consistent verifies that older is a prefix of newer.
func (a *Auditor) consistent(ctx context.Context, older, newer *Checkpoint) error {
	if older.Size == 0 {
		if !bytes.Equal(older.RootHash, rfc6962.DefaultHasher.EmptyRoot()) {
			return fmt.Errorf("%w: a size-0 checkpoint with a non-empty root", ErrInconsistent)
		}
		return nil
	}
	var p struct {
		Hashes [][]byte `json:"hashes"`
	}
	q := url.Values{"from": {strconv.FormatUint(older.Size, 10)}, "to": {strconv.FormatUint(newer.Size, 10)}}
	if err := a.getJSON(ctx, "/v1/proofs/consistency", q, &p); err != nil {
		return err
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p.Hashes, older.RootHash, newer.RootHash); err != nil {
		return fmt.Errorf("%w: checkpoint of size %d is not a prefix of size %d: %v\n%s\n%s", ErrInconsistent, older.Size, newer.Size, err, older.Note, newer.Note)
	}
	return nil
}

// save writes the trusted checkpoint to the state file atomically.
func (a *Auditor) save(cp *Checkpoint) error {
	if a.cfg.StateFile == "" {
		return nil
	}
	raw, _ := json.Marshal(map[string]string{"checkpoint": string(cp.Note)})
	tmp, err := os.CreateTemp(filepath.Dir(a.cfg.StateFile), ".trusted-*")
	if err != nil {
		return fmt.Errorf("client: saving trusted state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(raw)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), a.cfg.StateFile)
	}
	if err != nil {
		return fmt.Errorf("client: saving trusted state: %w", err)
	}
	return nil
}

// VerifyInclusion updates the trusted checkpoint and verifies that entry
// is at index in its tree. It returns that checkpoint.
func (a *Auditor) VerifyInclusion(ctx context.Context, index uint64, entry []byte) (*Checkpoint, error) {
	cp, err := a.Update(ctx)
	if err != nil {
		return nil, err
	}
	if index >= cp.Size {
		return cp, fmt.Errorf("%w: entry %d is beyond the trusted checkpoint of size %d (not yet covered)", ErrNotIncluded, index, cp.Size)
	}
	var p struct {
		Hashes [][]byte `json:"hashes"`
	}
	q := url.Values{"index": {strconv.FormatUint(index, 10)}, "size": {strconv.FormatUint(cp.Size, 10)}}
	if err := a.getJSON(ctx, "/v1/proofs/inclusion", q, &p); err != nil {
		return cp, err
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, leaf, p.Hashes, cp.RootHash); err != nil {
		return cp, fmt.Errorf("%w: entry %d in the tree of size %d: %v", ErrNotIncluded, index, cp.Size, evidence.ProofError(err))
	}
	return cp, nil
}

// Entry fetches the entry at index (an auditor key is needed) and
// verifies that it is in the log. It returns the entry's bytes and the
// checkpoint it was proven against.
func (a *Auditor) Entry(ctx context.Context, index uint64) ([]byte, *Checkpoint, error) {
	var e struct {
		Entry       json.RawMessage `json:"entry"`
		EntryBase64 []byte          `json:"entry_base64"`
		LeafHash    string          `json:"leaf_hash"`
	}
	if err := a.getJSON(ctx, "/v1/entries/"+strconv.FormatUint(index, 10), nil, &e); err != nil {
		return nil, nil, err
	}
	data := []byte(e.Entry)
	if e.EntryBase64 != nil {
		data = e.EntryBase64
	}
	h := sha256.Sum256(append([]byte{0}, data...))
	if base64.StdEncoding.EncodeToString(h[:]) != e.LeafHash {
		return nil, nil, fmt.Errorf("%w: the served leaf hash is not the hash of the served entry %d", ErrNotIncluded, index)
	}
	cp, err := a.VerifyInclusion(ctx, index, data)
	if err != nil {
		return nil, cp, err
	}
	return data, cp, nil
}

func (a *Auditor) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := a.cfg.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if a.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.APIKey)
	}
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return nil, fmt.Errorf("client: GET %s: %s: %s", path, resp.Status, e.Error)
	}
	return b, nil
}

func (a *Auditor) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	b, err := a.get(ctx, path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: GET %s: %w", path, err)
	}
	return nil
}
