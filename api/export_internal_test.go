package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

// TestExporterStops: an export stops on the first error of its search,
// a read, a write or a row, or when its context ends; it returns that
// error, writes nothing after it, and leaves no goroutine behind.
func TestExporterStops(t *testing.T) {
	l := ledgertest.New(t, ledger.Config{})
	const n = 3*ledger.TileWidth + 10
	for first := 0; first < n; first += 100 {
		var entries []ledger.Entry
		for i := first; i < min(first+100, n); i++ {
			entries = append(entries, ledger.Entry{Data: fmt.Appendf(nil, `{"n":%d}`, i)})
		}
		if _, err := l.Append(context.Background(), entries...); err != nil {
			t.Fatal(err)
		}
	}
	errSearch, errWrite := errors.New("search"), errors.New("write")
	all := func(stopAt uint64, err error) func(context.Context, func(uint64) bool) error {
		return func(ctx context.Context, fn func(uint64) bool) error {
			for i := uint64(0); i < n+5; i++ {
				if i == stopAt {
					return err
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !fn(i) {
					return nil
				}
			}
			return nil
		}
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		format   string
		size     uint64
		search   func(context.Context, func(uint64) bool) error
		writeErr int // fail the write of this job (1-based)
		want     error
		wantN    int // lines written at least (-1: none; exactly, if want is nil)
	}{
		{name: "whole", size: n, search: all(n, nil), wantN: n},
		{name: "whole CSV", format: formatCSV, size: n, search: all(n, nil), wantN: n},
		{name: "whole OCSF", format: formatOCSF, size: n, search: all(n, nil), wantN: 0}, // no events: no rows
		{name: "search fails", size: n, search: all(300, errSearch), want: errSearch, wantN: 256},
		{name: "write fails", size: n, search: all(n, nil), writeErr: 2, want: errWrite, wantN: 256},
		{name: "beyond the size", size: 600, search: all(n, nil), want: ledger.ErrNotFound, wantN: 512},
		{name: "cancelled", ctx: cancelled, size: n, search: all(n, nil), want: context.Canceled, wantN: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := exporterGoroutines()
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			format := tc.format
			if format == "" {
				format = formatNDJSON
			}
			var out bytes.Buffer
			writes, during := 0, 0
			x := exporter{l: l, size: tc.size, format: format}
			err := x.run(ctx, tc.search, func(b []byte) error {
				writes++
				if writes == 1 {
					during = exporterGoroutines()
				}
				if writes == tc.writeErr {
					return errWrite
				}
				out.Write(b)
				return nil
			})
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("run() = %v, want %v", err, tc.want)
			}
			lines := bytes.Count(out.Bytes(), []byte("\n"))
			if tc.wantN == -1 && lines != 0 || tc.wantN >= 0 && lines < tc.wantN || tc.want == nil && lines != tc.wantN {
				t.Errorf("%d lines written, want %d", lines, tc.wantN)
			}
			// The count sees the exporter: at its first write, this
			// goroutine, the writer, is in run (the workers and the
			// producer may already be done).
			if writes > 0 && during <= before {
				t.Errorf("%d exporter goroutines during run, %d before; want the writer counted", during, before)
			}
			// run waits for its goroutines, but the one context.AfterFunc
			// starts for a cancelled context may still be finishing.
			deadline := time.Now().Add(10 * time.Second)
			for exporterGoroutines() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if g := exporterGoroutines(); g > before {
				t.Errorf("%d exporter goroutines after run, %d before:\n%s", g, before, strings.Join(exporterStacks(), "\n\n"))
			}
		})
	}
}

// exporterFrame marks, in a goroutine's stack, a function of the exporter:
// the workers, the producer and the writer are closures of its run.
const exporterFrame = "accessledger/api.(*exporter)."

// exporterStacks returns the stacks of the goroutines running or started
// by the exporter. Only those count: the ledger's own goroutines (its
// signer, Badger's) come and go while an export runs, whatever it does.
func exporterStacks() []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, exporterFrame) {
			out = append(out, g)
		}
	}
	return out
}

// exporterGoroutines counts the goroutines exporterStacks returns.
func exporterGoroutines() int { return len(exporterStacks()) }

// TestExportRowsUnchanged: CSV and OCSF exports, whose rows the workers
// now encode, are byte for byte what one encoder over the entries, read
// one by one, writes (as the handler did before), in both orders, for
// subsets of the log, across bundle boundaries and a partial last
// bundle, over events and leaves that are not.
func TestExportRowsUnchanged(t *testing.T) {
	l := ledgertest.New(t, ledger.Config{BundleCacheBytes: 1})
	const n = 4*ledger.TileWidth + 45
	now := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	for first := 0; first < n; first += 100 {
		var entries []ledger.Entry
		for i := first; i < min(first+100, n); i++ {
			var data []byte
			switch {
			case i%37 == 5:
				data = []byte("not json")
			case i%41 == 7:
				data = fmt.Appendf(nil, `{"kind":"alert","received_at":"2026-11-27T08:00:00.000000000Z","body":{"n":%d}}`, i)
			default:
				raw := fmt.Appendf(nil, `{"id":"e-%d","time":"2026-11-27T07:59:%02d.5Z","service":"sso","actor":{"id":"user-%d","type":"user","session":"s%d"},`+
					`"source":{"ip":"198.51.100.%d","port":%d,"user_agent":"ua, \"quoted\"","geo":{"country":"FR"},"asn":64500},`+
					`"action":"%s","category":"authentication","outcome":"failure","reason":"bad password, \"really\"","resource":{"type":"doc","id":"d%d"},`+
					`"mfa":%v,"request_id":"r%d","tenant":"t","attributes":{"k":"v,%d","lang":"日本"}}`,
					i, i%60, i%13, i, i%250, 1+i%65000, []string{"login", "logout", "read", "update", "grant"}[i%5], i%7, i%2 == 0, i, i)
				ev, err := event.Parse(raw, event.ParseOptions{})
				if err != nil {
					t.Fatalf("event.Parse(%s) = %v", raw, err)
				}
				if data, err = event.EncodeLeaf(event.KindEvent, now, ev.Canonical()); err != nil {
					t.Fatal(err)
				}
			}
			entries = append(entries, ledger.Entry{Data: data})
		}
		if _, err := l.Append(context.Background(), entries...); err != nil {
			t.Fatal(err)
		}
	}
	size, _ := l.Size()
	search := func(keep func(uint64) bool, desc bool, limit int) ([]uint64, func(context.Context, func(uint64) bool) error) {
		var idx []uint64
		for i := range size {
			if keep(i) {
				idx = append(idx, i)
			}
		}
		if desc {
			slices.Reverse(idx)
		}
		if limit > 0 && len(idx) > limit {
			idx = idx[:limit]
		}
		return idx, func(ctx context.Context, fn func(uint64) bool) error {
			for _, i := range idx {
				if !fn(i) {
					break
				}
			}
			return nil
		}
	}
	for _, format := range []string{formatCSV, formatOCSF, formatNDJSON} {
		for _, tc := range []struct {
			name  string
			keep  func(uint64) bool
			desc  bool
			limit int
		}{
			{name: "all", keep: func(uint64) bool { return true }},
			{name: "all desc", keep: func(uint64) bool { return true }, desc: true},
			{name: "every third", keep: func(i uint64) bool { return i%3 == 0 }},
			{name: "sparse desc", keep: func(i uint64) bool { return i%97 == 1 }, desc: true},
			{name: "limit 300", keep: func(uint64) bool { return true }, limit: 300},
			{name: "none", keep: func(uint64) bool { return false }},
		} {
			idx, s := search(tc.keep, tc.desc, tc.limit)
			// The reference: one encoder, entries read one by one.
			var want bytes.Buffer
			var enc rowEncoder
			switch format {
			case formatCSV:
				enc = newCSVEncoder(&want)
			case formatOCSF:
				enc = newOCSFEncoder(&want, l.Origin())
			}
			for _, i := range idx {
				entry, _, err := l.Entry(context.Background(), i)
				if err != nil {
					t.Fatal(err)
				}
				if enc != nil {
					err = enc.encode(i, entry)
				} else {
					want.Write(append(appendEventJSON(nil, i, entry), '\n'))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if enc != nil {
				if err := enc.flush(); err != nil {
					t.Fatal(err)
				}
			}
			// The export, as eventsStream runs it.
			var got bytes.Buffer
			if format == formatCSV {
				if err := newCSVEncoder(&got).flush(); err != nil {
					t.Fatal(err)
				}
			}
			x := exporter{l: l, size: size, limit: tc.limit, format: format, origin: l.Origin()}
			if err := x.run(context.Background(), s, func(b []byte) error { got.Write(b); return nil }); err != nil {
				t.Fatalf("%s %s: run() = %v", format, tc.name, err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s %s: %d bytes, want %d; first difference at %d", format, tc.name, got.Len(), want.Len(), firstDiff(got.Bytes(), want.Bytes()))
			}
			if format == formatOCSF && tc.name == "all" && want.Len() == 0 {
				t.Errorf("no OCSF rows at all")
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestExportBudget: the jobs in flight are bounded by the size of the
// last one, and one is always allowed.
func TestExportBudget(t *testing.T) {
	b := &exportBudget{}
	b.cond.L = &b.mu
	ctx := context.Background()
	for range 10 {
		if !b.acquire(ctx) {
			t.Fatal("acquire() = false with no estimate")
		}
	}
	for range 10 {
		b.release(exportInflightBytes / 2)
	}
	// Now at most one more may be in flight after the first.
	if !b.acquire(ctx) {
		t.Fatal("the first acquire() = false")
	}
	got := make(chan bool, 1)
	go func() { got <- b.acquire(ctx) }()
	select {
	case <-got:
		// (inflight+1)*est = exportInflightBytes: allowed.
	case <-time.After(10 * time.Second):
		// It does not wait at all; 10s only leaves a loaded machine
		// time to run the goroutine.
		t.Fatal("a second job of half the budget was held back")
	}
	go func() { got <- b.acquire(ctx) }()
	select {
	case ok := <-got:
		t.Fatalf("a third job of half the budget was let through (%v)", ok)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(exportInflightBytes / 2)
	if ok := <-got; !ok {
		t.Fatal("acquire() = false after a release")
	}
	// A cancelled wait returns false.
	cctx, cancel := context.WithCancel(ctx)
	go func() { got <- b.acquire(cctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	b.mu.Lock()
	b.cond.Broadcast()
	b.mu.Unlock()
	if ok := <-got; ok {
		t.Fatal("acquire() = true after its context ended")
	}
}
