package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/accessledger/accessledger/ledger"
)

const (
	contentTypeCheckpoint = "text/plain; charset=utf-8"
	contentTypeTile       = "application/octet-stream"
)

// Cache-Control directives of successful reads; setCache adds who may
// cache them.
const (
	// cacheImmutable is for what never changes once served: tiles and
	// entry bundles, partial ones too (a log only grows: a partial tile
	// of a width is the same prefix of every wider one, and tlog-tiles
	// says its caching headers SHOULD be long-lived), entries,
	// checkpoints by size, proofs for an explicit tree size.
	cacheImmutable = "max-age=31536000, immutable"
	// cacheLatest is for what changes as the log grows: the latest
	// checkpoint, the log's identity and size, the checkpoint list,
	// proofs against the latest size.
	cacheLatest = "no-cache"
)

// setCache sets Cache-Control for a successful read. Only what is served
// without a key (public_tiles) may be cached by shared caches ("public");
// anything that needed a key is "private", for the caller's cache alone.
func setCache(c *gin.Context, directive string) {
	scope := "private, "
	if c.GetBool(ctxPublic) {
		scope = "public, "
	}
	c.Header("Cache-Control", scope+directive)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func b64s(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = b64(h)
	}
	return out
}

// getLog answers the log's identity and its latest signed tree head.
func (s *Server) getLog(c *gin.Context) {
	l := s.cfg.Ledger
	cp := l.Latest()
	setCache(c, cacheLatest)
	body := gin.H{
		"origin":       l.Origin(),
		"verifier_key": l.VerifierKey(),
		"size":         cp.Size,
		"root_hash":    b64(cp.Hash),
	}
	s.addWitnessing(body)
	c.JSON(http.StatusOK, body)
}

// getCheckpoint serves the latest checkpoint (C2SP tlog-tiles), or with
// witnessing the newest witnessed one (api/witness.go).
func (s *Server) getCheckpoint(c *gin.Context) {
	if s.cfg.Witnessing != nil {
		s.getWitnessedCheckpoint(c)
		return
	}
	setCache(c, cacheLatest)
	c.Data(http.StatusOK, contentTypeCheckpoint, s.cfg.Ledger.Latest().Note)
}

// getCheckpointAt serves the checkpoint signed at a given size.
func (s *Server) getCheckpointAt(c *gin.Context) {
	size, ok := parseUint(c, "size", c.Param("size"))
	if !ok {
		return
	}
	cp, err := s.cfg.Ledger.CheckpointAt(c, size)
	if err != nil {
		s.fail(c, err, fmt.Sprintf("no checkpoint was signed at size %d; GET /v1/checkpoints lists the signed sizes", size))
		return
	}
	setCache(c, cacheImmutable)
	c.Data(http.StatusOK, contentTypeCheckpoint, cp.Note)
}

// Paging of GET /v1/checkpoints.
const (
	defaultCheckpointsLimit = 100
	maxCheckpointsLimit     = 1000
)

// checkpointInfo is one element of GET /v1/checkpoints.
type checkpointInfo struct {
	Size     uint64 `json:"size"`
	RootHash string `json:"root_hash"`
}

// getCheckpoints lists the signed checkpoints, oldest first: those of size
// ?from= (default 0) or more, at most ?limit= (default 100, at most 1000)
// of them. next, absent on the last page, is the from of the next page.
// Each checkpoint itself is at /v1/checkpoints/<size>.
func (s *Server) getCheckpoints(c *gin.Context) {
	var from uint64
	if v, ok := c.GetQuery("from"); ok {
		if from, ok = parseUint(c, "from", v); !ok {
			return
		}
	}
	limit := uint64(defaultCheckpointsLimit)
	if v, ok := c.GetQuery("limit"); ok {
		if limit, ok = parseUint(c, "limit", v); !ok {
			return
		}
		if limit < 1 || limit > maxCheckpointsLimit {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d, got %d", maxCheckpointsLimit, limit))
			return
		}
	}
	page := struct {
		Checkpoints []checkpointInfo `json:"checkpoints"`
		Next        *uint64          `json:"next,omitempty"`
	}{Checkpoints: []checkpointInfo{}}
	err := s.cfg.Ledger.Checkpoints(c, from, func(cp *ledger.Checkpoint) bool {
		if uint64(len(page.Checkpoints)) == limit {
			next := cp.Size
			page.Next = &next
			return false
		}
		page.Checkpoints = append(page.Checkpoints, checkpointInfo{Size: cp.Size, RootHash: b64(cp.Hash)})
		return true
	})
	if err != nil {
		s.fail(c, err, "")
		return
	}
	setCache(c, cacheLatest)
	c.JSON(http.StatusOK, page)
}

// getEntry answers an entry's stored bytes (embedded verbatim as JSON) and
// its leaf hash.
func (s *Server) getEntry(c *gin.Context) {
	index, ok := parseUint(c, "index", c.Param("index"))
	if !ok {
		return
	}
	data, leafHash, err := s.cfg.Ledger.Entry(c, index)
	if err != nil {
		s.fail(c, err, fmt.Sprintf("entry %d does not exist (yet); GET /v1/log gives the log's size", index))
		return
	}
	// Write the body by hand: encoding/json would re-escape the entry, and
	// an auditor must get the exact bytes that were hashed.
	var b strings.Builder
	fmt.Fprintf(&b, `{"index":%d,"leaf_hash":%q,`, index, b64(leafHash))
	if json.Valid(data) {
		b.WriteString(`"entry":`)
		b.Write(data)
	} else {
		fmt.Fprintf(&b, `"entry_base64":%q`, b64(data))
	}
	b.WriteString("}")
	setCache(c, cacheImmutable)
	c.Data(http.StatusOK, "application/json; charset=utf-8", []byte(b.String()))
}

// getInclusion answers an inclusion proof by index or by leaf hash. size
// defaults to the latest checkpoint's.
func (s *Server) getInclusion(c *gin.Context) {
	size, explicit, ok := s.sizeParam(c, "size")
	if !ok {
		return
	}
	idxStr, hasIdx := c.GetQuery("index")
	hashStr, hasHash := c.GetQuery("leaf_hash")
	var index uint64
	switch {
	case hasIdx && hasHash:
		writeError(c, http.StatusBadRequest, "give index or leaf_hash, not both")
		return
	case hasIdx:
		if index, ok = parseUint(c, "index", idxStr); !ok {
			return
		}
		if index >= size {
			writeError(c, http.StatusBadRequest, fmt.Sprintf("index %d must be below the tree size %d", index, size))
			return
		}
	case hasHash:
		leafHash, err := decodeHash(hashStr)
		if err != nil {
			writeError(c, http.StatusBadRequest, "leaf_hash must be a 32-byte hash in base64, standard or URL-safe, padded or not; "+err.Error())
			return
		}
		if index, err = s.cfg.Ledger.IndexOf(c, leafHash, size); err != nil {
			s.fail(c, err, fmt.Sprintf("no entry with that leaf hash among the first %d entries", size))
			return
		}
	default:
		writeError(c, http.StatusBadRequest, "index or leaf_hash is required")
		return
	}
	hashes, err := s.cfg.Ledger.InclusionProof(c, index, size)
	if err != nil {
		s.fail(c, err, "")
		return
	}
	setCache(c, proofCache(explicit))
	c.JSON(http.StatusOK, gin.H{"index": index, "size": size, "hashes": b64s(hashes)})
}

// getConsistency answers a consistency proof; to defaults to the latest
// checkpoint's size.
func (s *Server) getConsistency(c *gin.Context) {
	fromStr, ok := c.GetQuery("from")
	if !ok {
		writeError(c, http.StatusBadRequest, "from is required")
		return
	}
	from, ok := parseUint(c, "from", fromStr)
	if !ok {
		return
	}
	to, explicit, ok := s.sizeParam(c, "to")
	if !ok {
		return
	}
	switch {
	case from == 0:
		writeError(c, http.StatusBadRequest, "from must be at least 1: every tree is consistent with the empty one")
		return
	case from > to:
		writeError(c, http.StatusBadRequest, fmt.Sprintf("from %d must not be greater than to %d", from, to))
		return
	}
	hashes, err := s.cfg.Ledger.ConsistencyProof(c, from, to)
	if err != nil {
		s.fail(c, err, "")
		return
	}
	setCache(c, proofCache(explicit))
	c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "hashes": b64s(hashes)})
}

// proofCache is the caching of a proof: one for an explicit tree size
// never changes; one against the latest size does as the log grows.
func proofCache(explicitSize bool) string {
	if explicitSize {
		return cacheImmutable
	}
	return cacheLatest
}

// sizeParam reads a tree-size query parameter, defaulting to the size of
// the latest checkpoint, and answers 400 if it is beyond the log's durable
// size. explicit reports whether the caller gave it.
func (s *Server) sizeParam(c *gin.Context, name string) (size uint64, explicit, ok bool) {
	v, explicit := c.GetQuery(name)
	if !explicit {
		return s.cfg.Ledger.Latest().Size, false, true
	}
	if size, ok = parseUint(c, name, v); !ok {
		return 0, true, false
	}
	if cur, _ := s.cfg.Ledger.Size(); size > cur {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("%s %d is beyond the log's size %d", name, size, cur))
		return 0, true, false
	}
	return size, true, true
}

// parseUint parses a decimal integer parameter, answering 400 if it is not.
// Leading zeros are refused: an index or size has one spelling, so that a
// URL names one resource (and caches keep one copy of it).
func parseUint(c *gin.Context, name, v string) (uint64, bool) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || len(v) > 20 || leadingZero(v) {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be a non-negative decimal integer without leading zeros, got %q", name, truncate(v, 32)))
		return 0, false
	}
	return n, true
}

// leadingZero reports whether a decimal number is written with a leading
// zero (0 itself is not).
func leadingZero(v string) bool { return len(v) > 1 && v[0] == '0' }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decodeHash decodes a 32-byte hash in standard or URL-safe base64,
// padded or not. In a query string an unescaped "+" of standard base64
// arrives as a space, which no base64 alphabet has: it is read as "+".
func decodeHash(s string) ([]byte, error) {
	s = strings.TrimRight(strings.ReplaceAll(s, " ", "+"), "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("got %d bytes", len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("got %q, which is not base64", truncate(s, 48))
}

// tilePathUsage answers a tile path that is not the canonical encoding of
// a tile.
const tilePathUsage = "malformed tile path; C2SP tlog-tiles paths are /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>]"

// getTile serves C2SP tlog-tiles hash tiles and entry bundles:
// /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>]. Only the canonical
// encoding of a path is served.
func (s *Server) getTile(c *gin.Context) {
	p := strings.TrimPrefix(c.Param("path"), "/")
	level, rest, ok := strings.Cut(p, "/")
	if !ok {
		writeError(c, http.StatusNotFound, tilePathUsage)
		return
	}
	// Canonical paths only, parsed without allocating (serve_paths.go).
	index, width, ok := parseTilePath(rest)
	if !ok {
		writeError(c, http.StatusNotFound, tilePathUsage)
		return
	}
	var data []byte
	var err error
	what := "tile"
	if level == "entries" {
		what = "entry bundle"
		if width == 0 {
			// A full bundle has two representations: say so to caches.
			c.Header("Vary", "Accept-Encoding")
			if acceptsZstd(c.Request.Header.Values("Accept-Encoding")) {
				s.getStoredBundle(c, index)
				return
			}
		}
		data, err = s.cfg.Ledger.ReadEntryBundle(c, index, int(width))
	} else {
		l, ok := parseTileLevel(level)
		if !ok {
			writeError(c, http.StatusNotFound, tilePathUsage)
			return
		}
		// Through a pooled buffer: serving a tile allocates nothing.
		buf := tileBufs.Get().(*[]byte)
		defer tileBufs.Put(buf)
		data, err = s.cfg.Ledger.AppendTile(c, l, index, int(width), (*buf)[:0])
		*buf = data[:0]
	}
	if err != nil {
		s.fail(c, err, fmt.Sprintf("no such %s: the log is not that large (yet)", what))
		return
	}
	setCache(c, cacheImmutable)
	// A known length spares the chunked encoding of bodies over 4 KiB.
	c.Header("Content-Length", strconv.Itoa(len(data)))
	c.Data(http.StatusOK, contentTypeTile, data)
}

// getStoredBundle answers full entry bundle index to a client that
// accepts zstd: as stored, a zstd frame with Content-Encoding: zstd
// (RFC 8878), which the server never decompresses; or, for a bundle
// stored uncompressed, the same bytes as without Accept-Encoding. The
// bytes pass through a pooled buffer: a full read allocates nothing.
func (s *Server) getStoredBundle(c *gin.Context, index uint64) {
	buf := bundleBufs.Get().(*[]byte)
	defer bundleBufs.Put(buf)
	data, compressed, err := s.cfg.Ledger.AppendEntryBundleStored(c, index, (*buf)[:0])
	*buf = data[:0]
	if err != nil {
		s.fail(c, err, "no such entry bundle: the log is not that large (yet)")
		return
	}
	if compressed {
		c.Header("Content-Encoding", "zstd")
	}
	setCache(c, cacheImmutable)
	c.Header("Content-Length", strconv.Itoa(len(data)))
	c.Data(http.StatusOK, contentTypeTile, data)
}

// bundleBufs holds buffers for getStoredBundle, tileBufs for getTile;
// c.Data has written the bytes out (to the connection or its buffer) when
// it returns.
var (
	bundleBufs = sync.Pool{New: func() any { return new([]byte) }}
	tileBufs   = sync.Pool{New: func() any { return new([]byte) }}
)

// acceptsZstd reports whether Accept-Encoding header values list zstd
// with a non-zero quality (RFC 9110, section 12.5.3). A wildcard is not
// taken as zstd: only clients that name it get it.
func acceptsZstd(values []string) bool { return listAccepts(values, "zstd") }

// listAccepts reports whether the values of an Accept or Accept-Encoding
// header accept token (case-insensitively) with a quality above 0
// (RFC 9110, section 12.4.2: q=0 means "not acceptable").
func listAccepts(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(item, ";")
			if !strings.EqualFold(strings.TrimSpace(name), token) {
				continue
			}
			q := "1"
			for params != "" {
				var p string
				p, params, _ = strings.Cut(params, ";")
				if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					q = strings.TrimSpace(v)
				}
			}
			if f, err := strconv.ParseFloat(q, 64); err == nil && f > 0 {
				return true
			}
		}
	}
	return false
}
