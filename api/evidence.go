package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/client/evidence"
)

// Limits of GET /v1/evidence.
const (
	defaultEvidenceLimit = 10_000
	maxEvidenceLimit     = 100_000
)

// CosignedCheckpoint returns the checkpoint evidence is proved against:
// a checkpoint the log signed, with the cosignatures of its witnesses,
// and the witnesses' cosignature/v1 verifier keys. Config.CosignedCheckpoint
// supplies it; without one, evidence uses the latest checkpoint alone.
type CosignedCheckpoint func(ctx context.Context) (signedNote []byte, witnessKeys []string, err error)

// getEvidence answers GET /v1/evidence?<filters>&limit=N: an evidence
// bundle (package evidence) holding every matching entry below both the
// indexed size and the checkpoint's size, each with its C2SP tlog-proof
// against that checkpoint. A query matching more than limit entries
// (default 10,000, at most 100,000) is refused: a bundle never leaves
// matches out silently.
func (s *Server) getEvidence(c *gin.Context) {
	f, ok := s.parseFilters(c, "limit")
	if !ok {
		return
	}
	limit := uint64(defaultEvidenceLimit)
	if v, ok := c.GetQuery("limit"); ok {
		if limit, ok = parseUint(c, "limit", v); !ok {
			return
		}
		if limit < 1 || limit > maxEvidenceLimit {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d", maxEvidenceLimit))
			return
		}
	}
	cpNote, witnesses, cp, err := s.parsedEvidenceCheckpoint(c)
	if err != nil {
		s.fail(c, err, "")
		return
	}
	indexed := s.cfg.Index.Size()
	size := min(indexed, cp.Size)
	var n uint64
	if _, err := s.cfg.Index.Search(c, f.q, 0, size, false, func(uint64) bool { n++; return n <= limit }); err != nil {
		s.fail(c, err, "")
		return
	}
	if n > limit {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("the query matches more than %d entries; narrow it (since, until, ...) or raise limit (at most %d)", limit, maxEvidenceLimit))
		return
	}
	if !s.exports.take(c) {
		return
	}
	defer s.exports.done(c)
	c.Header(headerIndexedSize, strconv.FormatUint(indexed, 10))
	c.Header("Cache-Control", "private, no-store")
	c.Header("Content-Type", "application/json")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="evidence-%d.json"`, cp.Size))
	c.Status(http.StatusOK)
	tw := newTimedWriter(c)
	defer tw.end()
	bw := bufio.NewWriterSize(tw, 64<<10)
	w, err := evidence.NewWriter(bw, evidence.Header{
		Origin: s.cfg.Ledger.Origin(), VerifierKey: s.cfg.Ledger.VerifierKey(), WitnessKeys: witnesses,
		Checkpoint: cpNote, Query: strings.ToValidUTF8(f.canonical, "\uFFFD"), IndexedSize: indexed, Created: s.cfg.Clock(),
	})
	r := newEntryReader(s.cfg.Ledger, size)
	proofs := evidence.NewProofBuilder(s.cfg.Ledger, cp.Size) // shares nodes between the entries' proofs
	var failure error
	if err == nil {
		_, err = s.cfg.Index.Search(c, f.q, 0, size, false, func(i uint64) bool {
			if !s.keyStillValid(c) {
				failure = errKeyRevoked
				return false
			}
			entry, err := r.read(c, i)
			if err == nil {
				var hashes [][]byte
				if hashes, err = proofs.Inclusion(c, i); err == nil {
					err = w.Add(i, entry, hashes)
				}
			}
			failure = err
			return err == nil
		})
	}
	if err == nil {
		err = failure
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		s.abortAnswer(c, "an evidence bundle", err)
	}
}

// evidenceCheckpoint returns the checkpoint to prove evidence against and
// the witness keys of its cosignatures.
func (s *Server) evidenceCheckpoint(ctx context.Context) ([]byte, []string, error) {
	if s.cfg.CosignedCheckpoint != nil {
		return s.cfg.CosignedCheckpoint(ctx)
	}
	return s.cfg.Ledger.Latest().Note, nil, nil
}

// parsedEvidenceCheckpoint returns the evidence checkpoint (as
// evidenceCheckpoint), its witnesses' keys, and the checkpoint parsed and
// its signature checked with the log's key.
func (s *Server) parsedEvidenceCheckpoint(ctx context.Context) ([]byte, []string, *log.Checkpoint, error) {
	cpNote, witnesses, err := s.evidenceCheckpoint(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := note.NewVerifier(s.cfg.Ledger.VerifierKey())
	if err != nil {
		return nil, nil, nil, err
	}
	cp, _, _, err := log.ParseCheckpoint(cpNote, s.cfg.Ledger.Origin(), v)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parsing the evidence checkpoint: %w", err)
	}
	return cpNote, witnesses, cp, nil
}
