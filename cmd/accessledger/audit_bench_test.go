package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/accessledger/accessledger/event"
)

// benchLeaves returns n leaves as the log stores them.
func benchLeaves(b *testing.B, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		// As the server writes them: parsed, then encoded canonically.
		e, err := event.Parse(testEvent("", i), event.ParseOptions{})
		if err != nil {
			b.Fatal(err)
		}
		leaf, _, err := event.EncodeEventLeaf(time.Unix(1_800_000_000, int64(i)), e)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = leaf
	}
	return out
}

// hashLeaf writes the RFC 6962 leaf hash SHA-256(0x00 || e) into h.
func hashLeaf(h, e []byte) {
	d := sha256.New()
	d.Write([]byte{leafPrefix})
	d.Write(e)
	d.Sum(h[:0])
}

// BenchmarkAuditLeaves measures the auditor's own work per leaf in
// --full, without the network: checking the leaf envelope, hashing it and
// adding it to the recomputed tree.
//
//	go test -run XXX -bench AuditLeaves -cpu 1 ./cmd/accessledger
func BenchmarkAuditLeaves(b *testing.B) {
	leaves := benchLeaves(b, 4096)
	var sc event.JSONValidator
	size := 0
	for _, l := range leaves {
		size += len(l)
	}
	b.Run("validate", func(b *testing.B) {
		b.SetBytes(int64(size / len(leaves)))
		for i := range b.N {
			if err := validLeaf(&sc, leaves[i%len(leaves)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
	})
	b.Run("validate-reference", func(b *testing.B) {
		// The check before its fast paths (time.Parse and jsontext).
		b.SetBytes(int64(size / len(leaves)))
		for i := range b.N {
			if !oldValidLeaf(leaves[i%len(leaves)]) {
				b.Fatal("invalid")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
	})
	for _, bc := range []struct {
		name     string
		validate bool
	}{{"hash", false}, {"validate+hash", true}} {
		b.Run(bc.name, func(b *testing.B) {
			rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
			rng := rf.NewEmptyRange(0)
			h := make([]byte, 32)
			b.SetBytes(int64(size / len(leaves)))
			b.ResetTimer()
			for i := range b.N {
				e := leaves[i%len(leaves)]
				if bc.validate {
					if err := validLeaf(&sc, e); err != nil {
						b.Fatal(err)
					}
				}
				hashLeaf(h, e)
				if err := rng.Append(h, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
		})
	}
}

// BenchmarkAuditBundle measures a --full worker's own work per full entry
// bundle, without the network: decompressing the zstd-served bundle,
// checking and hashing its 256 leaves and computing its subtree root.
//
//	go test -run XXX -bench AuditBundle -cpu 1 -benchmem ./cmd/accessledger
func BenchmarkAuditBundle(b *testing.B) {
	var raw []byte
	for _, l := range benchLeaves(b, layout.EntryBundleWidth) {
		raw = binary.BigEndian.AppendUint16(raw, uint16(len(l)))
		raw = append(raw, l...)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	frame := enc.EncodeAll(raw, nil)
	dec, err := newBundleDecoder(1)
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	w := &bundleWorker{dec: dec}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if w.raw, err = w.dec.DecodeAll(frame, w.raw[:0]); err != nil {
			b.Fatal(err)
		}
		if _, err := w.hashBundle(w.raw, 7, layout.EntryBundleWidth, "tile/entries/007"); err != nil {
			b.Fatal(err)
		}
		subtreeRoot(w.hashes[:])
	}
	b.ReportMetric(float64(b.N*layout.EntryBundleWidth)/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkAuditFetch measures a --full worker's two requests per bundle
// (the zstd bundle and its level-0 tile) against a local net/http server
// serving fixed bytes: through the auditor's http.Client (net/http, as
// before) and on the worker's own connection (auditConn).
//
//	go test -run XXX -bench AuditFetch ./cmd/accessledger
func BenchmarkAuditFetch(b *testing.B) {
	bundle := bytes.Repeat([]byte("z"), 15<<10)
	tile := bytes.Repeat([]byte("t"), 8<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := tile
		if strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			body = bundle
			w.Header().Set("Content-Encoding", "zstd")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		b.Fatal(err)
	}
	a, err := newAuditor(auditConfig{URL: srv.URL, VKey: vkey, APIKey: "k", Workers: 1}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		get  func(path string, buf *bytes.Buffer, zstd bool) (bool, error)
	}{
		{"net-http", func(path string, buf *bytes.Buffer, zstd bool) (bool, error) { return a.get(ctx, path, buf, zstd) }},
		{"own-conn", (&auditConn{t: newRawTarget(u), apiKey: "k", timeout: time.Minute}).getter(ctx)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var buf bytes.Buffer
			i := 0
			for b.Loop() {
				if z, err := bc.get(layout.EntriesPath(uint64(i), 0), &buf, true); err != nil || !z || buf.Len() != len(bundle) {
					b.Fatalf("bundle: %v, %v, %d bytes", z, err, buf.Len())
				}
				if _, err := bc.get(layout.TilePath(0, uint64(i), 0), &buf, false); err != nil || buf.Len() != len(tile) {
					b.Fatalf("tile: %v, %d bytes", err, buf.Len())
				}
				i++
			}
		})
	}
}

// getter returns c.get bound to ctx.
func (c *auditConn) getter(ctx context.Context) func(string, *bytes.Buffer, bool) (bool, error) {
	return func(path string, buf *bytes.Buffer, zstd bool) (bool, error) { return c.get(ctx, path, buf, zstd) }
}
