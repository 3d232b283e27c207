package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/transparency-dev/tessera/api/layout"
)

const (
	contentTypeCheckpoint = "text/plain; charset=utf-8"
	contentTypeTile       = "application/octet-stream"
	cacheImmutable        = "public, max-age=31536000, immutable"
	cacheShort            = "no-cache"
)

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
	c.JSON(http.StatusOK, gin.H{
		"origin":       l.Origin(),
		"verifier_key": l.VerifierKey(),
		"size":         cp.Size,
		"root_hash":    b64(cp.Hash),
	})
}

// getCheckpoint serves the latest checkpoint (C2SP tlog-tiles).
func (s *Server) getCheckpoint(c *gin.Context) {
	c.Header("Cache-Control", cacheShort)
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
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", cacheImmutable)
	c.Data(http.StatusOK, contentTypeCheckpoint, cp.Note)
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
		s.fail(c, err)
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
	c.Header("Cache-Control", cacheImmutable)
	c.Data(http.StatusOK, "application/json; charset=utf-8", []byte(b.String()))
}

// getInclusion answers an inclusion proof by index or by leaf hash. size
// defaults to the latest checkpoint's.
func (s *Server) getInclusion(c *gin.Context) {
	size, ok := s.sizeParam(c, "size")
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
	case hasHash:
		leafHash, err := decodeHash(hashStr)
		if err != nil {
			writeError(c, http.StatusBadRequest, "leaf_hash: "+err.Error())
			return
		}
		if index, err = s.cfg.Ledger.IndexOf(c, leafHash, size); err != nil {
			s.fail(c, err)
			return
		}
	default:
		writeError(c, http.StatusBadRequest, "index or leaf_hash is required")
		return
	}
	hashes, err := s.cfg.Ledger.InclusionProof(c, index, size)
	if err != nil {
		s.fail(c, err)
		return
	}
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
	to, ok := s.sizeParam(c, "to")
	if !ok {
		return
	}
	hashes, err := s.cfg.Ledger.ConsistencyProof(c, from, to)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "hashes": b64s(hashes)})
}

// sizeParam reads a tree-size query parameter, defaulting to the size of
// the latest checkpoint.
func (s *Server) sizeParam(c *gin.Context, name string) (uint64, bool) {
	v, ok := c.GetQuery(name)
	if !ok {
		return s.cfg.Ledger.Latest().Size, true
	}
	return parseUint(c, name, v)
}

// parseUint parses a decimal integer parameter, answering 400 if it is not.
func parseUint(c *gin.Context, name, v string) (uint64, bool) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || len(v) > 20 {
		writeError(c, http.StatusBadRequest, fmt.Sprintf("%s must be a non-negative decimal integer, got %q", name, truncate(v, 32)))
		return 0, false
	}
	return n, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decodeHash decodes a 32-byte hash in base64url or standard base64, padded
// or not.
func decodeHash(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("must be 32 bytes, got %d", len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64")
}

// getTile serves C2SP tlog-tiles hash tiles and entry bundles:
// /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>]. Only the canonical
// encoding of a path is served.
func (s *Server) getTile(c *gin.Context) {
	p := strings.TrimPrefix(c.Param("path"), "/")
	level, rest, ok := strings.Cut(p, "/")
	if !ok {
		writeError(c, http.StatusNotFound, "malformed tile path")
		return
	}
	index, width, err := layout.ParseTileIndexPartial(rest)
	if err != nil {
		writeError(c, http.StatusNotFound, "malformed tile path")
		return
	}
	var data []byte
	if level == "entries" {
		if layout.EntriesPath(index, width) != "tile/"+p {
			writeError(c, http.StatusNotFound, "malformed tile path")
			return
		}
		data, err = s.cfg.Ledger.ReadEntryBundle(c, index, int(width))
	} else {
		l, perr := layout.ParseTileLevel(level)
		if perr != nil || layout.TilePath(l, index, width) != "tile/"+p {
			writeError(c, http.StatusNotFound, "malformed tile path")
			return
		}
		data, err = s.cfg.Ledger.ReadTile(c, uint8(l), index, int(width))
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", cacheImmutable)
	c.Data(http.StatusOK, contentTypeTile, data)
}
