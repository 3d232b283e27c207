package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// armedFault fails one commit at one step, once (a non-sticky fault): the
// commit that reaches the step first blocks there until release, so that
// the test can queue requests behind it, and then fails.
type armedFault struct {
	step    commitStep
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func newArmedFault(step commitStep) *armedFault {
	return &armedFault{step: step, reached: make(chan struct{}), release: make(chan struct{})}
}

func (f *armedFault) hook(step commitStep) error {
	if step != f.step {
		return nil
	}
	fired := false
	f.once.Do(func() {
		fired = true
		close(f.reached)
		<-f.release
	})
	if fired {
		return fmt.Errorf("injected fault at step %d", step)
	}
	return nil
}

type appendOutcome struct {
	entries []Entry
	res     []Result
	err     error
}

// TestFailStopAtEveryCommitStep injects one non-sticky fault at each step
// of a commit, with requests queued behind the failing one, and checks the
// fail-stop contract of Append: nothing unstored is acknowledged or
// signed, everything queued and later fails with ErrFailed, and after a
// restart the log holds exactly the acknowledged entries plus possibly the
// whole failed batch.
func TestFailStopAtEveryCommitStep(t *testing.T) {
	steps := []struct {
		name string
		step commitStep
	}{
		{"BeforeWrite", stepBeforeWrite},
		{"DuringWrite", stepDuringWrite},
		{"AtSync", stepAtSync},
		{"AfterSync", stepAfterSync},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			fault := newArmedFault(-1) // armed below
			l, cfg := newTestLedger(t, func(c *Config) { c.faultHook = func(s commitStep) error { return fault.hook(s) } })
			// 300 acknowledged entries: a full bundle, a partial one.
			appendN(t, l, 0, 300, 64)
			if _, err := l.SignCheckpoint(bg); err != nil {
				t.Fatalf("SignCheckpoint() = %v", err)
			}
			acked, ackedRoot := l.Size()

			fault = newArmedFault(tc.step)
			failing := make(chan appendOutcome, 1)
			// 250 incompressible entries of 400 bytes seal bundle 1 into
			// a value of 100 KB: the commit has a value-log phase.
			failingEntries := randomEntries(250, 400)
			go func() {
				res, err := l.Append(bg, failingEntries...)
				failing <- appendOutcome{failingEntries, res, err}
			}()
			<-fault.reached
			// Requests queued behind the failing commit.
			const behind = 5
			queued := make(chan appendOutcome, behind)
			for i := range behind {
				go func() {
					e := testEntries(fmt.Sprintf("behind-%d", i), 3)
					res, err := l.Append(bg, e...)
					queued <- appendOutcome{e, res, err}
				}()
			}
			waitFor(t, "requests queued behind the failing commit", func() bool { return l.QueueDepth() == behind*3 })
			close(fault.release)

			o := <-failing
			if !errors.Is(o.err, ErrFailed) || o.res != nil {
				t.Errorf("Append() of the failing batch = %v, %v; want nil, ErrFailed", o.res, o.err)
			}
			for range behind {
				if o := <-queued; !errors.Is(o.err, ErrFailed) || o.res != nil {
					t.Errorf("Append() queued behind the failing batch = %v, %v; want nil, ErrFailed", o.res, o.err)
				}
			}
			if _, err := l.Append(bg, Entry{Data: []byte("later")}); !errors.Is(err, ErrFailed) {
				t.Errorf("Append() after the failure = %v, want ErrFailed", err)
			}
			if err := l.Healthy(); !errors.Is(err, ErrFailed) {
				t.Errorf("Healthy() after the failure = %v, want ErrFailed", err)
			}
			if size, root := l.Size(); size != acked || !bytes.Equal(root, ackedRoot) {
				t.Errorf("Size() after the failure = %d, want %d (the acknowledged size)", size, acked)
			}
			if _, err := l.SignCheckpoint(bg); !errors.Is(err, ErrFailed) {
				t.Errorf("SignCheckpoint() after the failure = %v, want ErrFailed", err)
			}
			if cp := l.Latest(); cp.Size > acked {
				t.Errorf("Latest().Size after the failure = %d, want at most %d", cp.Size, acked)
			}
			if _, _, err := l.Entry(bg, acked); !errors.Is(err, ErrNotFound) {
				t.Errorf("Entry(%d) after the failure = %v, want ErrNotFound", acked, err)
			}
			if _, err := l.ReadTile(bg, 0, acked/TileWidth, int(acked%TileWidth)+1); !errors.Is(err, ErrNotFound) {
				t.Errorf("ReadTile(0, %d, %d) beyond the acknowledged size = %v, want ErrNotFound", acked/TileWidth, acked%TileWidth+1, err)
			}
			if err := l.Close(bg); !errors.Is(err, ErrFailed) {
				t.Errorf("Close() of a failed ledger = %v, want ErrFailed", err)
			}

			if tc.step == stepDuringWrite {
				// The value-log phase left bundle 1 behind, beyond the
				// size: Open must remove it.
				editStore(t, cfg.Dir, func(txn *badger.Txn) error {
					if _, err := txn.Get(rawBundleKey(1)); err != nil {
						t.Errorf("bundle 1 after a failure between the phases: %v, want it stored", err)
					}
					return nil
				})
			}

			// Restart: it opens cleanly (full verification), holds the
			// acknowledged entries and at most the whole failed batch.
			cfg.faultHook = nil
			l2 := openTestLedger(t, cfg)
			size, _ := l2.Size()
			switch size {
			case acked:
			case acked + uint64(len(failingEntries)):
				if tc.step < stepAtSync {
					t.Errorf("Size() after restart = %d: a batch that failed before Badger committed it was stored", size)
				}
				for i, e := range failingEntries {
					data, _, err := l2.Entry(bg, acked+uint64(i))
					if err != nil || !bytes.Equal(data, e.Data) {
						t.Errorf("Entry(%d) after restart = %q, %v; want %q", acked+uint64(i), data, err, e.Data)
					}
				}
			default:
				t.Fatalf("Size() after restart = %d, want %d or %d (acknowledged, plus the whole failed batch)", size, acked, acked+uint64(len(failingEntries)))
			}
			for i := range acked {
				data, _, err := l2.Entry(bg, i)
				if err != nil || !bytes.Equal(data, entryData(int(i))) {
					t.Fatalf("Entry(%d) after restart = %q, %v; want %q", i, data, err, entryData(int(i)))
				}
			}
			// The fault was not sticky: the log goes on.
			res := appendData(t, l2, []byte("after restart"))
			if res[0].Index != size {
				t.Errorf("Append() after restart got index %d, want %d", res[0].Index, size)
			}
			if _, err := l2.SignCheckpoint(bg); err != nil {
				t.Errorf("SignCheckpoint() after restart = %v", err)
			}
		})
	}
}

// randomEntries returns n entries of size random (incompressible) bytes.
func randomEntries(n, size int) []Entry {
	r := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	e := make([]Entry, n)
	for i := range e {
		e[i].Data = make([]byte, size)
		for j := range e[i].Data {
			e[i].Data[j] = byte(r.Uint32())
		}
	}
	return e
}

func testEntries(prefix string, n int) []Entry {
	e := make([]Entry, n)
	for i := range e {
		e[i] = Entry{Data: fmt.Appendf(nil, `{"%s":%d}`, prefix, i)}
	}
	return e
}

// TestBadgerErrorLogStopsLedger checks that an error Badger only logs (as
// it does for a failed value-log sync) stops appends at once and makes
// the ledger unhealthy, whatever the text of the log line.
func TestBadgerErrorLogStopsLedger(t *testing.T) {
	l, _ := newTestLedger(t)
	appendN(t, l, 0, 3, 3)
	before, _ := l.Size()
	badgerLogger{l: l.log, fault: l.fault}.Errorf("some future wording of a storage problem: %v", errors.New("input/output error"))
	if err := l.Healthy(); !errors.Is(err, ErrFailed) {
		t.Errorf("Healthy() after Badger logged an error = %v, want ErrFailed", err)
	}
	if _, err := l.Append(bg, Entry{Data: []byte("after the fault")}); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("Append() after Badger logged an error = %v, want ErrFailed naming the error", err)
	}
	if size, _ := l.Size(); size != before {
		t.Errorf("Size() = %d, want %d", size, before)
	}
	if _, err := l.SignCheckpoint(bg); !errors.Is(err, ErrFailed) {
		t.Errorf("SignCheckpoint() after Badger logged an error = %v, want ErrFailed", err)
	}
}

// TestMergedBatchesFitInOneTransaction is the reproduction of the commit
// that overflowed Badger's transaction: production storage options,
// MaxBatchSize 16384, four concurrent calls of 2,300 entries with ids that
// merge into one batch. Every call must succeed, and the log reopen.
func TestMergedBatchesFitInOneTransaction(t *testing.T) {
	cfg := testConfig(t)
	cfg.BadgerOptions = nil // production memtable, hence transaction limits
	cfg.MaxBatchSize = 16384
	cfg.QueueSize = 65536
	cfg.MaxBatchAge = 50 * time.Millisecond // let the four calls merge
	l, err := Create(bg, cfg)
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	const callers, perCall = 4, 2300
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			entries := make([]Entry, perCall)
			for i := range entries {
				id := fmt.Sprintf("svc-%d/evt-%06d", c, i)
				entries[i] = Entry{
					Data:     fmt.Appendf(nil, `{"kind":"event","received_at":"2026-11-27T10:00:00.000000000Z","body":{"id":%q,"service":"billing","actor":{"id":"user-%d"},"source":{"ip":"203.0.113.%d"},"action":"login","category":"authentication","outcome":"failure","reason":"invalid_credentials","padding":"%s"}}`, id, i, i%250, strings.Repeat("x", 120)),
					DedupKey: []byte(id),
				}
			}
			if _, err := l.Append(bg, entries...); err != nil {
				errs <- fmt.Errorf("caller %d: Append(%d entries) = %v", c, perCall, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := l.Healthy(); err != nil {
		t.Fatalf("Healthy() = %v", err)
	}
	cp, err := l.SignCheckpoint(bg)
	if err != nil || cp.Size != callers*perCall {
		t.Fatalf("SignCheckpoint() = %v, %v; want size %d", cp, err, callers*perCall)
	}
	for _, i := range []uint64{0, 10, callers*perCall - 1} {
		if _, _, err := l.Entry(bg, i); err != nil {
			t.Errorf("Entry(%d) = %v", i, err)
		}
	}
	closeLedger(t, l)
	l = openTestLedger(t, cfg)
	if size, _ := l.Size(); size != callers*perCall {
		t.Errorf("Size() after reopen = %d, want %d", size, callers*perCall)
	}
}

// TestNoAcceptedConfigurationOverflowsATransaction drives the ledger with
// random calls at the extremes of what serve accepts (max_batch_size up to
// 65536, entries up to 64 KiB, long ids, calls up to 3 MiB) on the
// production storage options and on small test memtables: no commit may
// fail, whatever merges into a batch.
func TestNoAcceptedConfigurationOverflowsATransaction(t *testing.T) {
	shapes := []struct {
		name    string
		entries int // per call, at most
		size    int // bytes per entry, at most
		idLen   int // 0: no ids
	}{
		{"ManyTinyWithIDs", 30000, 16, 200},
		{"ManySmallWithLongIDs", 4000, 600, 512},
		{"FewHuge", 48, MaxEntrySize, 64},
		{"Mixed", 2000, 8000, 100},
	}
	memtables := []struct {
		name    string
		options func(badger.Options) badger.Options
	}{
		{"Production", nil},
		{"SmallMemtable", testConfig(t).BadgerOptions},
	}
	for _, mt := range memtables {
		for _, sh := range shapes {
			t.Run(mt.name+"/"+sh.name, func(t *testing.T) {
				cfg := testConfig(t)
				cfg.BadgerOptions = mt.options
				cfg.MaxBatchSize = 65536
				cfg.QueueSize = 1 << 20
				cfg.QueueBytes = 256 << 20
				cfg.MaxBatchAge = 20 * time.Millisecond
				l, err := Create(bg, cfg)
				if err != nil {
					t.Fatalf("Create() = %v", err)
				}
				defer l.Close(bg)
				rng := rand.New(rand.NewPCG(1, uint64(len(sh.name))))
				var wg sync.WaitGroup
				var mu sync.Mutex
				appended, refused := 0, 0
				for c := range 4 {
					seed := rng.Uint64()
					wg.Go(func() {
						r := rand.New(rand.NewPCG(seed, uint64(c)))
						for call := range 2 {
							n := 1 + r.IntN(sh.entries)
							entries := make([]Entry, 0, n)
							total := 0
							for i := range n {
								d := bytes.Repeat([]byte{'a' + byte(i%26)}, 1+r.IntN(sh.size))
								var id []byte
								if sh.idLen > 0 {
									id = fmt.Appendf(nil, "%d-%d-%d-%s", c, call, i, strings.Repeat("i", r.IntN(sh.idLen)))
								}
								if total+len(d)+len(id) > MaxCallBytes {
									break
								}
								total += len(d) + len(id)
								entries = append(entries, Entry{Data: d, DedupKey: id})
							}
							_, err := l.Append(bg, entries...)
							mu.Lock()
							switch {
							case err == nil:
								appended += len(entries)
							case errors.Is(err, ErrTooLarge):
								// A call that cannot fit any transaction is
								// refused whole with a clear error; the
								// API's calls (1000 events) always fit.
								if len(entries) <= 1000 {
									refused++
								}
							default:
								t.Errorf("Append(%d entries, %d bytes) = %v", len(entries), total, err)
							}
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				if err := l.Healthy(); err != nil {
					t.Fatalf("Healthy() = %v", err)
				}
				if size, _ := l.Size(); size != uint64(appended) {
					t.Errorf("Size() = %d, want %d", size, appended)
				}
				if mt.options == nil && refused > 0 {
					t.Errorf("%d calls within the API's limits refused on production options, want none", refused)
				}
			})
		}
	}
}

// TestTxnCostBoundsBadger pins our measure of a write (writeCost) to the
// real Badger: for keys and values on both sides of the value threshold,
// a transaction takes exactly as many writes as our measure predicts
// before Badger refuses it with ErrTxnTooBig.
func TestTxnCostBoundsBadger(t *testing.T) {
	cfg := testConfig(t)
	cfg.Logger = nil
	cfg.setDefaults()
	db, err := badger.Open(badgerOptions(cfg, &storageFault{}))
	if err != nil {
		t.Fatalf("badger.Open() = %v", err)
	}
	defer db.Close()
	limit := txnCost{bytes: db.MaxBatchSize(), count: db.MaxBatchCount()}
	for _, tc := range []struct{ key, value int }{
		{17, 0}, {40, 72}, {10, valueThreshold - 1}, {10, valueThreshold}, {9, 100 << 10}, {300, 3000},
	} {
		t.Run(fmt.Sprintf("key%d/value%d", tc.key, tc.value), func(t *testing.T) {
			// A new transaction already holds its commit marker.
			sum := txnCost{bytes: int64(len("!badger!txn")) + 10, count: 1}
			want := 0
			for {
				next := sum
				next.add(writeCost(tc.key, tc.value))
				if !next.fits(limit) {
					break
				}
				sum = next
				want++
			}
			txn := db.NewTransaction(true)
			defer txn.Discard()
			value := make([]byte, tc.value)
			got := 0
			for ; ; got++ {
				key := make([]byte, tc.key)
				copy(key, fmt.Appendf(nil, "%d", got))
				if err := txn.Set(key, value); errors.Is(err, badger.ErrTxnTooBig) {
					break
				} else if err != nil {
					t.Fatalf("Set() = %v", err)
				}
			}
			if got != want {
				t.Errorf("Badger took %d writes of a %d-byte key and %d-byte value before ErrTxnTooBig, our measure predicts %d", got, tc.key, tc.value, want)
			}
		})
	}
}

// hangingSigner, once armed, signs only after release is closed.
type hangingSigner struct {
	Signer
	armed   *atomic.Bool
	release chan struct{}
}

func (h hangingSigner) Sign(msg []byte) ([]byte, error) {
	if h.armed.Load() {
		<-h.release
	}
	return h.Signer.Sign(msg)
}

// TestHungSigner checks that a signer that does not answer fails signing
// after SignTimeout, is counted, makes the ledger unhealthy after repeated
// failures, and never blocks Close.
func TestHungSigner(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	reg := prometheus.NewRegistry()
	var armed atomic.Bool
	l, _ := newTestLedger(t, func(c *Config) {
		c.SignTimeout = 50 * time.Millisecond
		c.Registerer = reg
		c.Signer = hangingSigner{c.Signer, &armed, release}
	})
	armed.Store(true)
	appendN(t, l, 0, 5, 5)
	if _, err := l.SignCheckpoint(bg); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("SignCheckpoint() with a hung signer = %v, want a timeout error", err)
	}
	// Until the hung signature returns, later ones fail at once, without
	// calling the signer: the error says so. (Timing them would not tell
	// this apart from each waiting its own 50ms SignTimeout on a loaded
	// machine; a later one that waited for the hung signature would hang
	// the test.)
	for range signFailuresUnhealthy - 1 {
		if _, err := l.SignCheckpoint(bg); err == nil || !strings.Contains(err.Error(), "previous signature has not returned") {
			t.Fatalf("SignCheckpoint() while a signature hangs = %v, want it to fail at once as the previous signature has not returned", err)
		}
	}
	if err := l.Healthy(); err == nil || !strings.Contains(err.Error(), "signing failed") {
		t.Errorf("Healthy() after %d signing failures = %v, want unhealthy", signFailuresUnhealthy, err)
	}
	checkMetrics(t, reg, map[string]float64{"accessledger_checkpoint_sign_failures_total": signFailuresUnhealthy})
	// Appends go on: they do not wait for checkpoints.
	appendN(t, l, 5, 5, 5)
	closed := make(chan error, 1)
	go func() { closed <- l.Close(bg) }()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "final checkpoint") {
			t.Errorf("Close() with a hung signer = %v, want the final checkpoint's failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close() blocked by a hung signer")
	}
}

// TestSignerRecovers checks that one successful signature after failures
// makes the ledger healthy again.
func TestSignerRecovers(t *testing.T) {
	release := make(chan struct{})
	var armed atomic.Bool
	l, _ := newTestLedger(t, func(c *Config) {
		c.SignTimeout = 20 * time.Millisecond
		c.Signer = hangingSigner{c.Signer, &armed, release}
	})
	armed.Store(true)
	appendN(t, l, 0, 5, 5)
	for range signFailuresUnhealthy {
		l.SignCheckpoint(bg)
	}
	if err := l.Healthy(); err == nil {
		t.Fatalf("Healthy() after %d signing failures = nil, want an error", signFailuresUnhealthy)
	}
	close(release)
	waitFor(t, "a signature to succeed", func() bool {
		cp, err := l.SignCheckpoint(bg)
		return err == nil && cp.Size == 5
	})
	if err := l.Healthy(); err != nil {
		t.Errorf("Healthy() after a successful signature = %v, want nil", err)
	}
}

// TestQueueBoundedInBytes checks that the queue refuses appends by bytes
// held, not only by entries.
func TestQueueBoundedInBytes(t *testing.T) {
	l, _ := newTestLedger(t, func(c *Config) {
		c.BadgerOptions = nil // production transaction limits
		c.QueueBytes = 2 * MaxCallBytes
		c.MaxBatchAge = time.Hour // hold the queue
		c.MaxBatchSize = 4096
	})
	big := make([]Entry, 40)
	for i := range big {
		big[i] = Entry{Data: bytes.Repeat([]byte{'x'}, 60000)}
	}
	// 40 * 60000 = 2.4 MB each: two fit in 6 MiB of queue (though only 80
	// entries), three do not.
	go l.Append(bg, big...)
	go l.Append(bg, big...)
	waitFor(t, "two calls queued", func() bool { return l.QueueDepth() == 2*len(big) })
	if _, err := l.Append(bg, big...); !errors.Is(err, ErrPushback) {
		t.Errorf("Append(2.4 MB) on a queue holding 4.8 MB of 6 MiB = %v, want ErrPushback", err)
	}
	if n, b := l.queueDepth(); n != 2*len(big) || b < 2*40*60000 {
		t.Errorf("queueDepth() = %d entries, %d bytes; want %d entries, at least %d bytes", n, b, 2*len(big), 2*40*60000)
	}
}

// TestBundleCacheBoundedInBytes checks that cached bundles never exceed
// their byte budget, however large the bundles.
func TestBundleCacheBoundedInBytes(t *testing.T) {
	c := newBundleCache(1 << 20)
	for i := range uint64(100) {
		c.Add(i, make([]byte, 100<<10))
		if b := c.Bytes(); b > 1<<20 {
			t.Fatalf("after adding bundle %d, Bytes() = %d, want at most %d", i, b, 1<<20)
		}
	}
	if _, ok := c.Get(99); !ok {
		t.Errorf("Get(99) of the newest bundle = missing")
	}
	if _, ok := c.Get(0); ok {
		t.Errorf("Get(0) of the oldest bundle = present, want evicted")
	}
	c.Add(1000, make([]byte, 512<<10)) // over a quarter of the cache: not kept
	if _, ok := c.Get(1000); ok {
		t.Errorf("Get(1000) of a bundle larger than a quarter of the cache = present, want not cached")
	}
}

// TestReadsStopAtDurableSize checks that tiles and bundles are served only
// up to the durable size, even where storage holds more.
func TestReadsStopAtDurableSize(t *testing.T) {
	fault := newArmedFault(stepAfterSync)
	l, _ := newTestLedger(t, func(c *Config) { c.faultHook = fault.hook })
	close(fault.release)
	// The first commit fails after its data is stored.
	if _, err := l.Append(bg, testEntries("stored-not-acked", 10)...); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append() = %v, want ErrFailed", err)
	}
	for _, w := range []int{1, 10} {
		if b, err := l.ReadEntryBundle(bg, 0, w); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadEntryBundle(0, %d) = %q, %v; want ErrNotFound: the entries are stored but not acknowledged", w, b, err)
		}
		if b, err := l.ReadTile(bg, 0, 0, w); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadTile(0, 0, %d) = %x, %v; want ErrNotFound", w, b, err)
		}
	}
}

func TestDurableWidth(t *testing.T) {
	tests := []struct {
		size      uint64
		treeLevel uint
		index     uint64
		width     int
		want      bool
	}{
		{0, 0, 0, 1, false},
		{1, 0, 0, 1, true},
		{1, 0, 0, 2, false},
		{256, 0, 0, 0, true},
		{255, 0, 0, 0, false},
		{257, 0, 1, 1, true},
		{257, 0, 1, 0, false},
		{65536, 8, 0, 0, true},
		{65535, 8, 0, 255, true},
		{65535, 8, 0, 0, false},
		{1 << 20, 0, 1 << 60, 1, false},
		{^uint64(0), 64, 0, 1, false},
	}
	for _, tc := range tests {
		if got := durableWidth(tc.size, tc.treeLevel, tc.index, tc.width); got != tc.want {
			t.Errorf("durableWidth(%d, %d, %d, %d) = %v, want %v", tc.size, tc.treeLevel, tc.index, tc.width, got, tc.want)
		}
	}
}

// slowSigner signs after a pause once armed, saying on entered (if it can)
// that a signature has begun.
type slowSigner struct {
	Signer
	armed   *atomic.Bool
	entered chan struct{}
	pause   time.Duration
}

func (s slowSigner) Sign(msg []byte) ([]byte, error) {
	if s.armed.Load() {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		time.Sleep(s.pause)
	}
	return s.Signer.Sign(msg)
}

// TestCloseWaitsForTheLoopsSignature: Close abandons the signature the
// checkpoint loop has in progress; the final checkpoint waits for it to
// return instead of failing because it has not yet (a graceful shutdown
// then exited 1, about one run in a hundred of the end-to-end tests).
func TestCloseWaitsForTheLoopsSignature(t *testing.T) {
	var armed atomic.Bool
	entered := make(chan struct{}, 1)
	cfg := testConfig(t)
	cfg.CheckpointInterval = 10 * time.Millisecond
	cfg.SignTimeout = 5 * time.Second
	cfg.Signer = slowSigner{cfg.Signer, &armed, entered, 200 * time.Millisecond}
	l, err := Create(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 0, 5, 5)
	armed.Store(true)
	appendN(t, l, 5, 5, 5)
	select {
	case <-entered: // the loop is signing
	case <-time.After(10 * time.Second):
		t.Fatal("the checkpoint loop did not sign within 10 s")
	}
	appendN(t, l, 10, 5, 5) // the final checkpoint has more to cover
	if err := l.Close(bg); err != nil {
		t.Fatalf("Close() while the loop was signing = %v, want nil", err)
	}
	l2 := openTestLedger(t, cfg)
	if cp := l2.latest.Load(); cp == nil || cp.Size != 15 {
		t.Errorf("latest checkpoint after reopening = %+v, want size 15", cp)
	}
}
