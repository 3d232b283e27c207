package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/accessledger/accessledger/ledger"
)

// TestEntryBundleZstd: a client that accepts zstd gets a full entry
// bundle as stored, compressed, and it decompresses to exactly the bytes
// every other client gets, unchanged; partial bundles and hash tiles are
// never compressed, and caches are told that full bundles vary.
func TestEntryBundleZstd(t *testing.T) {
	ts := newTestServer(t)
	const n = 600 // bundles 0 and 1 full, bundle 2 partial (88 entries)
	entries := make([]ledger.Entry, n)
	for i := range entries {
		entries[i].Data = tilesEntry(i)
	}
	if _, err := ts.l.Append(bg, entries...); err != nil {
		t.Fatalf("Append(%d entries) = %v", n, err)
	}
	// No transparent gzip: the test sets Accept-Encoding itself.
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(t *testing.T, path, acceptEncoding string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.srv.URL+"/"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+ts.auditor())
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: reading the body: %v", path, err)
		}
		return resp, body
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()

	for _, tc := range []struct {
		path   string
		index  uint64
		width  int
		bundle bool
	}{
		{"tile/entries/000", 0, 0, true},
		{"tile/entries/001", 1, 0, true},
		{"tile/entries/002.p/88", 2, 88, true},
		{"tile/entries/002.p/7", 2, 7, true},
		{"tile/0/000", 0, 0, false},
		{"tile/0/002.p/88", 2, 88, false},
	} {
		var want []byte
		if tc.bundle {
			want, err = ts.l.ReadEntryBundle(bg, tc.index, tc.width)
		} else {
			want, err = ts.l.ReadTile(bg, 0, tc.index, tc.width)
		}
		if err != nil {
			t.Fatalf("reading %s from the ledger: %v", tc.path, err)
		}
		fullBundle := tc.bundle && tc.width == 0
		for _, ae := range []string{"", "gzip", "gzip, deflate, br", "zstd;q=0", "zstd; q=0.000", "*", "identity", "zstd", "ZSTD", "gzip, zstd", "br;q=1, zstd;q=0.5"} {
			t.Run(tc.path+"/"+ae, func(t *testing.T) {
				resp, body := get(t, tc.path, ae)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s (Accept-Encoding %q) = %d %s", tc.path, ae, resp.StatusCode, body)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("GET %s (Accept-Encoding %q): Content-Type %q, want application/octet-stream", tc.path, ae, got)
				}
				if got, want := resp.Header.Get("Vary"), map[bool]string{true: "Accept-Encoding"}[fullBundle]; got != want {
					t.Errorf("GET %s (Accept-Encoding %q): Vary %q, want %q", tc.path, ae, got, want)
				}
				ce := resp.Header.Get("Content-Encoding")
				wantZstd := fullBundle && ae != "" && (ae == "zstd" || ae == "ZSTD" || ae == "gzip, zstd" || ae == "br;q=1, zstd;q=0.5")
				if !wantZstd {
					if ce != "" || !bytes.Equal(body, want) {
						t.Fatalf("GET %s (Accept-Encoding %q) = Content-Encoding %q, %d bytes; want the %d bytes of the ledger, unencoded", tc.path, ae, ce, len(body), len(want))
					}
					return
				}
				if ce != "zstd" {
					t.Fatalf("GET %s (Accept-Encoding %q): Content-Encoding %q, want zstd", tc.path, ae, ce)
				}
				if len(body) >= len(want) {
					t.Errorf("GET %s (Accept-Encoding %q): %d bytes, not smaller than the %d uncompressed", tc.path, ae, len(body), len(want))
				}
				got, err := dec.DecodeAll(body, nil)
				if err != nil {
					t.Fatalf("GET %s (Accept-Encoding %q): decompressing: %v", tc.path, ae, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("GET %s (Accept-Encoding %q) decompresses to %d bytes that differ from the %d uncompressed", tc.path, ae, len(got), len(want))
				}
				// And the uncompressed answer is the same bytes.
				_, plain := get(t, tc.path, "")
				if !bytes.Equal(plain, got) {
					t.Fatalf("GET %s without Accept-Encoding differs from the decompressed zstd answer", tc.path)
				}
			})
		}
	}
	// Beyond the log, or a full bundle not yet full: 404 either way.
	for _, p := range []string{"tile/entries/002", "tile/entries/003"} {
		for _, ae := range []string{"", "zstd"} {
			if resp, body := get(t, p, ae); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("GET %s (Accept-Encoding %q) = %d %q (Content-Encoding %q), want 404", p, ae, resp.StatusCode, body, resp.Header.Get("Content-Encoding"))
			}
		}
	}
	// Without a key that may read bundles: refused, compressed or not.
	req, _ := http.NewRequest(http.MethodGet, ts.srv.URL+"/tile/entries/000", nil)
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("GET tile/entries/000 without a key (zstd) = %d (Content-Encoding %q), want 401", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
}

// BenchmarkServeBundle measures serving a full entry bundle and its
// level-0 tile, as audit --full reads them, through the handler alone:
//
//	go test -run X -bench ServeBundle -benchmem ./api
func BenchmarkServeBundle(b *testing.B) {
	ts := newTestServer(b)
	entries := make([]ledger.Entry, 4*256)
	for i := range entries {
		entries[i].Data = tilesEntry(i)
	}
	if _, err := ts.l.Append(bg, entries...); err != nil {
		b.Fatal(err)
	}
	h := ts.api.Handler()
	for _, bc := range []struct{ name, path, ae string }{
		{"bundle-zstd", "/tile/entries/002", "zstd"},
		{"bundle-plain", "/tile/entries/002", ""},
		{"tile", "/tile/0/002", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			req.Header.Set("Authorization", "Bearer "+ts.auditor())
			if bc.ae != "" {
				req.Header.Set("Accept-Encoding", bc.ae)
			}
			w := httptest.NewRecorder()
			for b.Loop() {
				w.Body.Reset()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s = %d", bc.path, w.Code)
				}
			}
		})
	}
	// The level-0 tiles one after the other, as audit --full reads them
	// (served from the ledger's read-ahead window: tile 0 is read alone,
	// and a window from tile 1 on holds tiles 1 to 3).
	b.Run("tiles-in-order", func(b *testing.B) {
		var reqs []*http.Request
		for i := 1; i < 4; i++ {
			req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/tile/0/%03d", i), nil)
			req.Header.Set("Authorization", "Bearer "+ts.auditor())
			reqs = append(reqs, req)
		}
		w := httptest.NewRecorder()
		first := httptest.NewRequest(http.MethodGet, "/tile/0/000", nil) // tile 0 first
		first.Header.Set("Authorization", "Bearer "+ts.auditor())
		h.ServeHTTP(httptest.NewRecorder(), first)
		i := 0
		for b.Loop() {
			w.Body.Reset()
			h.ServeHTTP(w, reqs[i%len(reqs)])
			if w.Code != http.StatusOK {
				b.Fatalf("GET %s = %d", reqs[i%len(reqs)].URL, w.Code)
			}
			i++
		}
	})
}
