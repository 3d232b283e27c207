package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// ErrNoQuorum means no checkpoint of the log has met the policy's witness
// quorum yet (and fail-open is off).
var ErrNoQuorum = errors.New("witness: no checkpoint has met the witness quorum yet")

// ErrLogBehind means a witness holds a checkpoint of the log that the log
// does not contain: the log lost entries it had published (it was
// restored from an older backup, or lost data), and what it appended now
// would fork it. Errors that match it are *BehindError.
var ErrLogBehind = errors.New("witness: the log is behind a checkpoint its witnesses cosigned")

// BehindError says who holds a checkpoint of the log that the log does
// not contain. It matches ErrLogBehind.
type BehindError struct {
	// Witness is the policy's name of the witness that said so, or ""
	// for the quorum-met checkpoint saved in StateFile.
	Witness string `json:"witness,omitempty"`
	// Size is the size the witness has cosigned (0 if it did not say).
	Size uint64 `json:"witness_size"`
	// LogSize is the size of the log's latest checkpoint then.
	LogSize uint64 `json:"log_size"`
	// Inconsistent means the witness refused the log's checkpoint as
	// inconsistent with the one it cosigned (a 422, or a 409 naming the
	// very size sent): the log holds other entries than those it
	// cosigned, so it was appended to after it lost them.
	Inconsistent bool `json:"inconsistent,omitempty"`
}

func (e *BehindError) Error() string {
	who := "witness " + e.Witness
	if e.Witness == "" {
		who = "the witness quorum"
	}
	if e.Inconsistent {
		return fmt.Sprintf("%s refused the log's checkpoint of size %d as inconsistent with the checkpoint it cosigned (size %d): the log lost entries it had published and took others in their place", who, e.LogSize, e.Size)
	}
	return fmt.Sprintf("%s has cosigned the log at size %d, beyond its latest checkpoint (size %d): the log lost entries it had published", who, e.Size, e.LogSize)
}

func (e *BehindError) Unwrap() error { return ErrLogBehind }

// Log is what a Distributor needs of the log it distributes: its latest
// signed checkpoint and consistency proofs between signed sizes.
type Log interface {
	// LatestCheckpoint returns the latest signed checkpoint: its size,
	// the signed note and when it was signed (zero if unknown).
	LatestCheckpoint() (size uint64, signed []byte, signedAt time.Time)
	// ConsistencyProof returns the RFC 6962 consistency proof between
	// two tree sizes the log has signed.
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
}

// signDurable is asked when a witness has cosigned size n, beyond the
// log's latest checkpoint latest: if the log holds n entries or more,
// durable but not yet signed (a file-system snapshot restored, taken
// between a commit and the checkpoint over it), SignDurable signs them
// and signDurable returns the new latest size, so that the log is not
// taken for one behind the witness (whether the tree is the one the
// witness cosigned, the witness judges from the proof sent next).
// Otherwise it returns latest.
func (d *Distributor) signDurable(ctx context.Context, n, latest uint64) uint64 {
	if d.cfg.SignDurable == nil {
		return latest
	}
	size, err := d.cfg.SignDurable(ctx, n)
	if err != nil {
		d.log.Warn("signing the entries the log holds beyond its latest checkpoint failed", "err", err)
		return latest
	}
	return max(latest, size)
}

// DistributorConfig holds what a Distributor needs. Policy, Log and
// LogVerifier are required.
type DistributorConfig struct {
	// Policy lists the witnesses (each with the URL of its submission
	// prefix) and the quorum.
	Policy *Policy
	// SignDurable, if set, signs a checkpoint over every entry the log
	// holds if they are atLeast or more, and returns the size of the
	// latest checkpoint then (0 if it signed nothing). It is asked before
	// the log is taken for one behind a witness (see signDurable).
	SignDurable func(ctx context.Context, atLeast uint64) (uint64, error)
	// Log is the log whose checkpoints are distributed.
	Log Log
	// LogVerifier verifies the log's own checkpoint signature (checkpoints
	// loaded from StateFile are checked with it).
	LogVerifier note.Verifier
	// FailOpen makes Checkpoint serve the latest signed checkpoint, with
	// the cosignatures it has so far, when the quorum is not met for it.
	FailOpen bool
	// StateFile, if set, keeps the newest quorum-met checkpoint across
	// restarts (written atomically on every improvement).
	StateFile string
	// Client sends the requests; nil means a client with keep-alives.
	Client *http.Client
	// Timeout bounds one add-checkpoint request (default 5s).
	Timeout time.Duration
	// Poll is how often the log's latest checkpoint is looked at
	// (default 25ms; reading it is an atomic load).
	Poll time.Duration
	// MaxBackoff caps the wait between attempts at a failing witness
	// (default 30s; the first wait is 250ms).
	MaxBackoff time.Duration
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the distributor's metrics; nil skips them.
	Registerer prometheus.Registerer
	// WriteFile writes StateFile and BehindFile atomically; nil uses a
	// temporary file and a rename.
	WriteFile func(path string, data []byte) error
	// OnBehind, if set, is called once, with a *BehindError, when the
	// distributor learns that a witness holds a checkpoint of the log
	// that the log does not contain: a witness of the policy answers 409
	// with a size beyond the log's latest checkpoint, or refuses that
	// checkpoint as inconsistent with the one it cosigned, or the
	// quorum-met checkpoint saved in StateFile is beyond it. The log then
	// lost entries it had published, and whatever it appended would fork
	// it: OnBehind must stop the log's appends before it returns
	// (ledger.Halt). One witness's word is enough (the policy's witnesses
	// are trusted not to lie about their size). It is called from a
	// witness's goroutine, or from NewDistributor for what StateFile or
	// BehindFile hold.
	OnBehind func(error)
	// BehindFile, if set, records the first BehindError, so that the log
	// stays stopped across restarts even when no witness answers then:
	// NewDistributor reports a recorded one again, unless the log's
	// latest checkpoint has since reached the size the witness had
	// cosigned (the log was restored from a copy that holds it; the
	// witnesses then check that it holds the same entries), in which case
	// it removes the file. A file it cannot read makes NewDistributor
	// fail.
	BehindFile string
}

// Distributor is the log's side of witnessing: one goroutine per witness
// pushes each new checkpoint to it (C2SP tlog-witness add-checkpoint),
// starting from the size 0 and correcting it from the witness's 409,
// with a consistency proof from the size the witness has. Each returned
// cosignature is verified with the witness's key before it is kept; a
// checkpoint whose cosignatures meet the policy's quorum becomes the
// witnessed checkpoint. A slow or failing witness holds up no other and
// never the log: it is retried with backoff, always with the newest
// checkpoint. A witness that holds a checkpoint the log does not contain
// stops the log (OnBehind): appending then would fork it. Its methods are
// safe for concurrent use.
type Distributor struct {
	cfg       DistributorConfig
	log       *slog.Logger
	witnesses []*witnessClient
	metrics   *distributorMetrics

	mu        sync.Mutex
	cosigs    map[uint64]*cosigned // recent checkpoints by size
	witnessed *cosigned            // newest quorum-met checkpoint, nil if none
	latest    *cosigned            // newest checkpoint seen
	behind    *BehindError         // the first one learnt, nil if none
	behindSet chan struct{}        // closed when behind is set

	waiting atomic.Int32 // WaitFirstRound calls under way
}

// cosigned is a checkpoint and the verified cosignature lines gathered
// for it, by witness index. Guarded by Distributor.mu.
type cosigned struct {
	size     uint64
	note     []byte
	signedAt time.Time
	lines    map[int][]byte
}

// recentCheckpoints is how many checkpoints keep their cosignatures while
// witnesses catch up.
const recentCheckpoints = 64

// witnessClient is the log's model of one witness. Its fields below mu are
// owned by the witness's goroutine and read by Status under mu.
type witnessClient struct {
	idx      int
	pw       PolicyWitness
	endpoint string

	// first is closed once the witness has answered since Run began
	// with a status it decided on (answered): until then it is asked
	// again soon after each transient failure.
	first     chan struct{}
	firstOnce sync.Once

	mu           sync.Mutex
	size         uint64 // the size the witness is believed to have cosigned
	cosignedSize uint64 // newest size it cosigned for us since start
	cosignedAt   time.Time
	lastErr      string
	lastErrAt    time.Time
	failures     int
}

// WitnessStatus is the log's view of one witness, for /v1/log.
type WitnessStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Size is the size the log believes the witness has cosigned.
	Size uint64 `json:"size"`
	// CosignedSize is the newest checkpoint it cosigned since the log
	// started (0 if none), at CosignedAt.
	CosignedSize uint64    `json:"cosigned_size"`
	CosignedAt   time.Time `json:"cosigned_at,omitzero"`
	// LastError is the last failure, if the latest attempt failed.
	LastError           string    `json:"last_error,omitempty"`
	LastErrorAt         time.Time `json:"last_error_at,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
}

// NewDistributor checks cfg and returns a distributor; Run starts it.
func NewDistributor(cfg DistributorConfig) (*Distributor, error) {
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("witness: DistributorConfig.Policy is required")
	case cfg.Log == nil:
		return nil, errors.New("witness: DistributorConfig.Log is required")
	case cfg.LogVerifier == nil:
		return nil, errors.New("witness: DistributorConfig.LogVerifier is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 25 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if cfg.WriteFile == nil {
		cfg.WriteFile = writeFileRename
	}
	d := &Distributor{cfg: cfg, log: cfg.Logger, cosigs: map[uint64]*cosigned{}, behindSet: make(chan struct{})}
	for i, pw := range cfg.Policy.Witnesses {
		if pw.URL == "" {
			return nil, fmt.Errorf("witness: policy witness %s has no URL: a log needs each witness's submission prefix", pw.Name)
		}
		u, err := url.Parse(pw.URL)
		if err != nil {
			return nil, fmt.Errorf("witness: witness %s URL: %w", pw.Name, err)
		}
		d.witnesses = append(d.witnesses, &witnessClient{idx: i, pw: pw, endpoint: u.JoinPath("add-checkpoint").String(), first: make(chan struct{})})
	}
	var err error
	if d.metrics, err = newDistributorMetrics(cfg.Registerer, d); err != nil {
		return nil, err
	}
	if cfg.StateFile != "" {
		d.loadState()
	}
	if err := d.checkSaved(); err != nil {
		d.metrics.unregister()
		return nil, err
	}
	return d, nil
}

// checkSaved reports, before any witness is asked, what BehindFile
// recorded and a saved witnessed checkpoint beyond the log's latest.
func (d *Distributor) checkSaved() error {
	size, _, _ := d.cfg.Log.LatestCheckpoint()
	if d.cfg.BehindFile != "" {
		rec, err := LoadBehind(d.cfg.BehindFile, size, d.log)
		if err != nil {
			return err
		}
		if rec != nil {
			d.setBehind(rec, false)
		}
	}
	if d.witnessed != nil && d.witnessed.size > size {
		d.setBehind(&BehindError{Size: d.witnessed.size, LogSize: size}, true)
	}
	return nil
}

// LoadBehind returns the BehindError recorded in path (a BehindFile), or
// nil if there is none. A record of a size that the log's latest
// checkpoint (logSize) now reaches no longer applies: the log was
// restored from a copy that holds it (the witnesses then check that it
// holds the same entries); LoadBehind removes it, logs it and returns
// nil. A record of an inconsistent checkpoint always applies. A record it
// cannot read is an error. serve reads it even without a witness policy,
// so that dropping the policy does not let the log fork.
func LoadBehind(path string, logSize uint64, log *slog.Logger) (*BehindError, error) {
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("witness: reading %s, which records that a witness had cosigned the log beyond its size: %w", path, err)
	}
	var rec BehindError
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("witness: %s, which records that a witness had cosigned the log beyond its size, does not parse (%w); see README, Restoring from a backup", path, err)
	}
	if rec.Inconsistent || rec.Size > logSize {
		return &rec, nil
	}
	log.Info("the log now holds the size a witness had cosigned beyond it; the witnesses will check that it holds the same entries",
		"witness", rec.Witness, "witness_size", rec.Size, "log_size", logSize, "removing", path)
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("witness: removing %s: %w", path, err)
	}
	return nil, nil
}

// setBehind keeps e, if it is the first BehindError learnt: it stops the
// log's appends (OnBehind), records e in BehindFile (if record) and says
// what to do.
func (d *Distributor) setBehind(e *BehindError, record bool) {
	d.mu.Lock()
	first := d.behind == nil
	if first {
		d.behind = e
		close(d.behindSet)
	}
	d.mu.Unlock()
	if !first {
		d.log.Debug("the log is behind a checkpoint a witness cosigned (said already)", "err", e)
		return
	}
	if d.cfg.OnBehind != nil {
		d.cfg.OnBehind(e)
	}
	d.metrics.behind.Set(1)
	if record && d.cfg.BehindFile != "" {
		raw, _ := json.Marshal(e)
		if err := d.cfg.WriteFile(d.cfg.BehindFile, append(raw, '\n')); err != nil {
			d.log.Error("recording that the log is behind a checkpoint a witness cosigned failed: after a restart the log takes appends until a witness says so again", "path", d.cfg.BehindFile, "err", err)
		}
	}
	d.log.Error("the log is behind a checkpoint its witnesses cosigned: it lost entries it had published (restored from an older backup, or lost data), and it takes no more appends, which would fork it. "+
		"Restore a copy that holds every entry the witness cosigned, or keep this log read-only and start a new log under a new origin (README: Restoring from a backup)",
		"witness", e.Witness, "witness_size", e.Size, "log_size", e.LogSize, "inconsistent", e.Inconsistent, "record", d.cfg.BehindFile)
}

// Behind returns the *BehindError learnt (from a witness, BehindFile or
// StateFile), or nil.
func (d *Distributor) Behind() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.behind == nil {
		return nil
	}
	return d.behind
}

// WaitFirstRound waits until every witness has answered since Run began
// with a status it decided on (C2SP tlog-witness: 200, 400, 403, 404,
// 409 or 422), until one says the log is behind, or until ctx ends. A
// failure that is no such answer (no connection, a timeout, a 5xx from
// the witness or a proxy, a 429) is retried while it waits every
// quarter-second or so, not with the growing backoff. It returns Behind(), if set, else ctx's error if
// some witness has not answered (Unanswered names them). serve calls it
// before it takes appends, so that a log restored behind what its
// witnesses cosigned is stopped before it appends anything.
func (d *Distributor) WaitFirstRound(ctx context.Context) error {
	d.waiting.Add(1)
	defer d.waiting.Add(-1)
	for _, w := range d.witnesses {
		select {
		case <-w.first:
		case <-d.behindSet:
			return d.Behind()
		case <-ctx.Done():
			if err := d.Behind(); err != nil {
				return err
			}
			return ctx.Err()
		}
	}
	return d.Behind()
}

// Unanswered returns the names of the witnesses that have not answered
// since Run began with a status they decided on (see WaitFirstRound), in
// policy order.
func (d *Distributor) Unanswered() []string {
	var out []string
	for _, w := range d.witnesses {
		select {
		case <-w.first:
		default:
			out = append(out, w.pw.Name)
		}
	}
	return out
}

// Run pushes checkpoints to every witness until ctx ends. It returns once
// every witness goroutine has stopped.
func (d *Distributor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range d.witnesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runWitness(ctx, w)
		}()
	}
	// Without witnesses, still track the latest checkpoint for quorum
	// none.
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		d.observe()
		select {
		case <-ctx.Done():
			wg.Wait()
			d.metrics.unregister()
			return nil
		case <-t.C:
		}
	}
}

// observe records the log's latest checkpoint; with quorum none it is
// witnessed at once.
func (d *Distributor) observe() *cosigned {
	size, signed, at := d.cfg.Log.LatestCheckpoint()
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cosigs[size]
	if c == nil || !bytes.Equal(c.note, signed) {
		c = &cosigned{size: size, note: signed, signedAt: at, lines: map[int][]byte{}}
		d.cosigs[size] = c
		for len(d.cosigs) > recentCheckpoints {
			oldest := size
			for s := range d.cosigs {
				oldest = min(oldest, s)
			}
			delete(d.cosigs, oldest)
		}
	}
	if d.latest == nil || size > d.latest.size {
		d.latest = c
		if d.cfg.Policy.QuorumNone() {
			d.setWitnessed(c)
		}
	}
	return c
}

// runWitness is one witness's goroutine.
func (d *Distributor) runWitness(ctx context.Context, w *witnessClient) {
	backoff := time.Duration(0)
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		if backoff > 0 {
			timer := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		c := d.observe()
		w.mu.Lock()
		done := w.cosignedSize >= c.size && w.failures == 0 && !w.cosignedAt.IsZero()
		w.mu.Unlock()
		if done {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		answered, err := d.push(ctx, w, c)
		if ctx.Err() != nil {
			return
		}
		firstRound := true
		select {
		case <-w.first:
			firstRound = false
		default:
		}
		if answered {
			w.firstOnce.Do(func() { close(w.first) })
		}
		w.mu.Lock()
		if err != nil {
			w.failures++
			w.lastErr, w.lastErrAt = err.Error(), time.Now()
			n := w.failures
			w.mu.Unlock()
			backoff = backoffFor(n, d.cfg.MaxBackoff)
			if firstRound && !answered && d.waiting.Load() > 0 {
				// serve waits for the witness's first answer
				// (WaitFirstRound): ask again soon.
				backoff = backoffFor(1, min(firstRoundBackoff, d.cfg.MaxBackoff))
			}
			level := slog.LevelWarn
			if n > 1 {
				level = slog.LevelDebug // said once; metrics and /v1/log keep count
			}
			d.log.Log(ctx, level, "witness did not cosign", "witness", w.pw.Name, "size", c.size, "err", err, "retry_in", backoff.Round(time.Millisecond))
			continue
		}
		if w.failures > 0 {
			d.log.InfoContext(ctx, "witness cosigns again", "witness", w.pw.Name, "size", c.size, "after_failures", w.failures)
		}
		w.failures, w.lastErr, w.lastErrAt = 0, "", time.Time{}
		w.mu.Unlock()
		backoff = 0
	}
}

// firstRoundBackoff is the wait after a transient failure before the
// witness has answered for the first time.
const firstRoundBackoff = 250 * time.Millisecond

// backoffFor is the wait after n consecutive failures: 250ms doubling up
// to max, with ±25% jitter.
func backoffFor(n int, max time.Duration) time.Duration {
	b := 250 * time.Millisecond
	for i := 1; i < n && b < max; i++ {
		b *= 2
	}
	b = min(b, max)
	return b - b/4 + time.Duration(rand.Int64N(int64(b/2)+1))
}

// maxConflicts bounds consecutive 409s for one checkpoint: a witness
// whose size keeps moving under us (another client of the same log) is
// retried later.
const maxConflicts = 3

// push sends checkpoint c to witness w until it cosigns, or fails. It
// reports whether the witness answered with a status it decided on
// (decided), even if push fails: what such an answer says about the log
// is acted on (OnBehind); a transient failure says nothing.
func (d *Distributor) push(ctx context.Context, w *witnessClient, c *cosigned) (answered bool, err error) {
	for attempt := 0; ; attempt++ {
		w.mu.Lock()
		old := w.size
		w.mu.Unlock()
		var proof [][]byte
		if old > 0 && old < c.size {
			var err error
			if proof, err = d.cfg.Log.ConsistencyProof(ctx, old, c.size); err != nil {
				return answered, fmt.Errorf("building the consistency proof %d → %d: %w", old, c.size, err)
			}
		}
		body := AddRequest{OldSize: old, Proof: proof, Checkpoint: c.note}.Marshal()
		status, ctype, resp, err := d.post(ctx, w.endpoint, body)
		if err != nil {
			d.metrics.requests.WithLabelValues(w.pw.Name, "unreachable").Inc()
			return answered, err
		}
		answered = answered || decided(status)
		switch status {
		case http.StatusOK:
			line, err := d.verifyCosignature(w, c, resp)
			if err != nil {
				d.metrics.requests.WithLabelValues(w.pw.Name, "bad_cosignature").Inc()
				return answered, err
			}
			d.metrics.requests.WithLabelValues(w.pw.Name, "cosigned").Inc()
			w.mu.Lock()
			w.size, w.cosignedSize, w.cosignedAt = c.size, c.size, time.Now()
			w.mu.Unlock()
			d.metrics.sizes.WithLabelValues(w.pw.Name).Set(float64(c.size))
			d.addCosignature(c, w.idx, line)
			return answered, nil
		case http.StatusConflict:
			d.metrics.requests.WithLabelValues(w.pw.Name, "conflict").Inc()
			mt, _, _ := mime.ParseMediaType(ctype)
			n, perr := strconv.ParseUint(strings.TrimSuffix(string(resp), "\n"), 10, 64)
			if mt != "text/x.tlog.size" || perr != nil {
				return answered, fmt.Errorf("409 without a tree size (Content-Type %q, body %q)", ctype, truncate(resp))
			}
			d.metrics.sizes.WithLabelValues(w.pw.Name).Set(float64(n))
			latest, _, _ := d.cfg.Log.LatestCheckpoint()
			if n > latest {
				latest = d.signDurable(ctx, n, latest)
			}
			if n > latest {
				// The witness cosigned a larger checkpoint than the
				// log's latest: the log lost entries it published (or
				// another log uses its key). It stops (OnBehind). Forget
				// the size, so that the next attempt asks the witness
				// again with old 0.
				w.mu.Lock()
				w.size = 0
				w.mu.Unlock()
				d.setBehind(&BehindError{Witness: w.pw.Name, Size: n, LogSize: latest}, true)
				return answered, fmt.Errorf("the witness has cosigned size %d, larger than the log's latest checkpoint %d", n, latest)
			}
			if n > c.size {
				// A newer checkpoint than c, which the log signed
				// meanwhile (another distributor of the log pushed it):
				// the next attempt sends the newest.
				w.mu.Lock()
				w.size = n
				w.mu.Unlock()
				return answered, fmt.Errorf("409: the witness has cosigned size %d, newer than the checkpoint sent (%d)", n, c.size)
			}
			w.mu.Lock()
			w.size = n
			w.mu.Unlock()
			if n == old && old == c.size {
				// tlog-witness answers 409 with the old size for the
				// size it cosigned with another root: a fork.
				d.setBehind(&BehindError{Witness: w.pw.Name, Size: n, LogSize: c.size, Inconsistent: true}, true)
				return answered, fmt.Errorf("409: the witness cosigned another tree of size %d", n)
			}
			if n == old || attempt+1 >= maxConflicts {
				return answered, fmt.Errorf("409: the witness keeps answering a size (%d) other than the old size sent", n)
			}
			d.log.DebugContext(ctx, "witness is at another size", "witness", w.pw.Name, "sent_old", old, "witness_size", n)
		case http.StatusUnprocessableEntity:
			// The checkpoint is inconsistent with the one the witness
			// cosigned (a bad proof, or another root at its size): the
			// log is a fork of what it published.
			d.metrics.requests.WithLabelValues(w.pw.Name, strconv.Itoa(status)).Inc()
			d.setBehind(&BehindError{Witness: w.pw.Name, Size: old, LogSize: c.size, Inconsistent: true}, true)
			return answered, fmt.Errorf("status %d: %s", status, truncate(resp))
		default:
			d.metrics.requests.WithLabelValues(w.pw.Name, strconv.Itoa(status)).Inc()
			return answered, fmt.Errorf("status %d: %s", status, truncate(resp))
		}
	}
}

// decided reports whether a witness's status is one it decided on, as C2SP
// tlog-witness has them: cosigned (200), a malformed request (400), no
// trusted signature (403), an unknown origin (404), another size (409) or
// a bad proof (422). A 5xx (the witness's or a proxy's), a 429 and any
// other status are no answer about the log.
func decided(status int) bool {
	switch status {
	case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound,
		http.StatusConflict, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func truncate(b []byte) string {
	s := strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
	if len(s) > 200 {
		cut := 200
		for !utf8.RuneStart(s[cut]) {
			cut-- // not into the middle of a character
		}
		s = s[:cut] + "…"
	}
	return s
}

// maxResponseBytes bounds a witness's answer.
const maxResponseBytes = 64 << 10

func (d *Distributor) post(ctx context.Context, endpoint string, body []byte) (int, string, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, "", nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b, nil
}

// verifyCosignature checks a 200 answer: signature lines of which one is
// by the witness's key and verifies over the checkpoint. It returns that
// line.
func (d *Distributor) verifyCosignature(w *witnessClient, c *cosigned, resp []byte) ([]byte, error) {
	if len(resp) == 0 || resp[len(resp)-1] != '\n' || !bytes.HasPrefix(resp, []byte("— ")) {
		return nil, fmt.Errorf("200 without signature lines: %q", truncate(resp))
	}
	// Name the line at fault; note.Open says only "malformed note".
	for _, line := range bytes.Split(resp[:len(resp)-1], []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("— ")) {
			return nil, fmt.Errorf("200 with a line that is not a signature line (tlog-witness: the answer is signature lines only): %q", truncate(line))
		}
	}
	signed := append(bytes.Clone(c.note), resp...)
	n, err := note.Open(signed, note.VerifierList(w.pw.Verifier))
	if err != nil {
		return nil, fmt.Errorf("the cosignature does not verify with the witness's key %s: %w", w.pw.VKey, err)
	}
	s := n.Sigs[0]
	if t, err := CosignatureTime(s.Base64); err == nil && t.Unix() == 0 {
		return nil, errors.New("the cosignature has a zero timestamp")
	}
	return fmt.Appendf(nil, "— %s %s\n", s.Name, s.Base64), nil
}

// addCosignature keeps a verified cosignature and re-evaluates the quorum.
func (d *Distributor) addCosignature(c *cosigned, idx int, line []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c.lines[idx] = line
	if d.cfg.Policy.Satisfied(func(i int) bool { return c.lines[i] != nil }) &&
		(d.witnessed == nil || c.size >= d.witnessed.size) {
		d.setWitnessed(c)
	}
}

// setWitnessed makes c the witnessed checkpoint. d.mu is held.
func (d *Distributor) setWitnessed(c *cosigned) {
	first := d.witnessed == nil || d.witnessed.size < c.size
	d.witnessed = c
	d.metrics.quorumSize.Set(float64(c.size))
	if first && !c.signedAt.IsZero() {
		d.metrics.quorumDelay.Observe(time.Since(c.signedAt).Seconds())
	}
	if d.cfg.StateFile != "" {
		if err := d.cfg.WriteFile(d.cfg.StateFile, assemble(c)); err != nil {
			d.log.Error("saving the witnessed checkpoint failed", "path", d.cfg.StateFile, "err", err)
		}
	}
}

// assemble returns c's checkpoint with its cosignature lines, in policy
// order.
func assemble(c *cosigned) []byte {
	out := bytes.Clone(c.note)
	for _, i := range slices.Sorted(maps.Keys(c.lines)) {
		out = append(out, c.lines[i]...)
	}
	return out
}

// Checkpoint returns the checkpoint to serve: the newest one whose
// cosignatures meet the quorum, with them appended (no extension lines are
// added). With FailOpen, the latest signed checkpoint with the
// cosignatures it has so far, if it is newer. Without either it returns
// ErrNoQuorum.
func (d *Distributor) Checkpoint() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.FailOpen && d.latest != nil && (d.witnessed == nil || d.latest.size > d.witnessed.size) {
		return assemble(d.latest), nil
	}
	if d.witnessed == nil {
		return nil, ErrNoQuorum
	}
	return assemble(d.witnessed), nil
}

// WitnessedSize returns the size of the newest quorum-met checkpoint and
// whether there is one.
func (d *Distributor) WitnessedSize() (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.witnessed == nil {
		return 0, false
	}
	return d.witnessed.size, true
}

// Status returns the log's view of each witness, in policy order.
func (d *Distributor) Status() []WitnessStatus {
	out := make([]WitnessStatus, len(d.witnesses))
	for i, w := range d.witnesses {
		w.mu.Lock()
		out[i] = WitnessStatus{
			Name: w.pw.Name, URL: w.pw.URL, Size: w.size, CosignedSize: w.cosignedSize, CosignedAt: w.cosignedAt,
			LastError: w.lastErr, LastErrorAt: w.lastErrAt, ConsecutiveFailures: w.failures,
		}
		w.mu.Unlock()
	}
	return out
}

// FailOpen reports whether the distributor serves unwitnessed checkpoints.
func (d *Distributor) FailOpen() bool { return d.cfg.FailOpen }

// loadState restores the witnessed checkpoint saved in StateFile, if it
// still verifies with the log's key and meets the policy's quorum.
func (d *Distributor) loadState() {
	raw, err := os.ReadFile(d.cfg.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		d.log.Warn("reading the saved witnessed checkpoint failed; starting without one", "err", err)
		return
	}
	n, err := note.Open(raw, note.VerifierList(d.cfg.LogVerifier))
	var cp log.Checkpoint
	if err == nil {
		_, err = cp.Unmarshal([]byte(n.Text))
	}
	if err != nil {
		d.log.Warn("the saved witnessed checkpoint does not verify with the log's key; ignoring it", "path", d.cfg.StateFile, "err", err)
		return
	}
	c := &cosigned{size: cp.Size, lines: map[int][]byte{}}
	// The log's own signature lines, then each witness's verified line.
	var logSigs bytes.Buffer
	logSigs.WriteString(n.Text + "\n")
	for _, s := range n.Sigs {
		fmt.Fprintf(&logSigs, "— %s %s\n", s.Name, s.Base64)
	}
	c.note = logSigs.Bytes()
	for i, pw := range d.cfg.Policy.Witnesses {
		if wn, err := note.Open(raw, note.VerifierList(pw.Verifier)); err == nil {
			c.lines[i] = fmt.Appendf(nil, "— %s %s\n", wn.Sigs[0].Name, wn.Sigs[0].Base64)
		}
	}
	if !d.cfg.Policy.Satisfied(func(i int) bool { return c.lines[i] != nil }) {
		d.log.Info("the saved witnessed checkpoint does not meet the current policy's quorum; ignoring it", "path", d.cfg.StateFile)
		return
	}
	d.witnessed = c
	d.metrics.quorumSize.Set(float64(c.size))
}

// writeFileRename writes data to path via a synced temporary file and a
// rename.
func writeFileRename(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// distributorMetrics are the log side's Prometheus metrics.
type distributorMetrics struct {
	reg         prometheus.Registerer
	requests    *prometheus.CounterVec
	sizes       *prometheus.GaugeVec
	quorumSize  prometheus.Gauge
	quorumDelay prometheus.Histogram
	failing     prometheus.Collector
	behind      prometheus.Gauge
}

func newDistributorMetrics(reg prometheus.Registerer, d *Distributor) (*distributorMetrics, error) {
	m := &distributorMetrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_witness_requests_total",
			Help: "add-checkpoint requests to each witness, by result (cosigned, conflict, unreachable, bad_cosignature, or the HTTP status).",
		}, []string{"witness", "result"}),
		sizes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "accessledger_witness_size",
			Help: "The size each witness is believed to have cosigned (from its answers).",
		}, []string{"witness"}),
		quorumSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accessledger_witness_quorum_size",
			Help: "Size of the newest checkpoint whose cosignatures meet the witness policy's quorum.",
		}),
		quorumDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "accessledger_witness_quorum_seconds",
			Help:    "Time from signing a checkpoint to meeting the quorum for it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		behind: newBehindGauge(),
	}
	f := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accessledger_witness_failing",
		Help: "Witnesses whose latest attempt failed.",
	}, func() float64 {
		n := 0
		for _, s := range d.Status() {
			if s.ConsecutiveFailures > 0 {
				n++
			}
		}
		return float64(n)
	})
	m.failing = f
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.sizes, m.quorumSize, m.quorumDelay, f, m.behind} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("witness: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// newBehindGauge returns accessledger_witness_log_behind, at 0.
func newBehindGauge() prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "accessledger_witness_log_behind",
		Help: "1 once a witness holds a checkpoint of the log that the log does not contain (restored from an older backup, or lost data): the log then takes no appends (README: Restoring from a backup); else 0.",
	})
}

// RegisterLogBehind registers accessledger_witness_log_behind at 1 with
// reg, for a log that has no distributor but is recorded as behind its
// witnesses (LoadBehind): serve without a witness policy.
func RegisterLogBehind(reg prometheus.Registerer) error {
	g := newBehindGauge()
	g.Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("witness: registering metrics: %w", err)
	}
	return nil
}

func (m *distributorMetrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.requests, m.sizes, m.quorumSize, m.quorumDelay, m.failing, m.behind} {
		m.reg.Unregister(c)
	}
}
