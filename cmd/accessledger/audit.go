package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/klauspost/compress/zstd"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	evbundle "github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/witness"
)

const auditUsage = `usage: accessledger audit --url URL --vkey VKEY --state DIR [flags]

audit checks a log without trusting its server, using only what any C2SP
tlog-tiles client sees: it fetches the checkpoint, verifies the log's
signature (and with --policy the witness quorum), and proves that it is
consistent with the last checkpoint it verified (kept in --state), from the
hash tiles. --full also downloads every entry bundle and hash tile,
recomputes every tile and the root, and checks that every entry is a valid
leaf (resumable: an interrupted run continues where it stopped). On a split
view or an inconsistency it prints both signed checkpoints and the proof
and exits 1, as for every other finding against the log, with a precise
report. A run that found nothing against the log but could not check
everything (a request not served, the other view of --compare not read)
exits 3, and a wrong command line 2.

The API key (an auditor key; entry bundles need it) comes from
ACCESSLEDGER_AUDIT_API_KEY or --api-key-file.

flags:
`

// auditConfig is the audit command's configuration.
type auditConfig struct {
	URL, VKey, State, Policy, APIKey, Webhook, Compare string
	Full, Follow, JSON, Progress                       bool
	Interval                                           time.Duration
	Workers                                            int
}

// workersPerProc is --workers' default per P. A worker waits for the
// server part of the time (the request, and reads from the disk when the
// server's pages were trimmed from the page cache), so the two cores of
// a machine that runs the server too stay busy only with several workers
// per core: against a local server on two cores, 24 workers verified a
// median 1,037,000 leaves/s in twelve runs, 16 workers 991,000 in
// fifteen, 8 workers 930,000 in twelve, 32 workers 1,014,000 in six
// (BENCHMARKS.md).
const workersPerProc = 12

func auditFlags(args []string, getenv func(string) string, stderr io.Writer) (auditConfig, error) {
	var c auditConfig
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), auditUsage); fs.PrintDefaults() }
	fs.StringVar(&c.URL, "url", "", "the log's base URL (where /checkpoint and /tile/ are served)")
	fs.StringVar(&c.VKey, "vkey", "", "the log's verifier key (<origin>+<hex key ID>+<base64 key>), or a file holding it (such as <data>/log.vkey)")
	fs.StringVar(&c.State, "state", "", "directory keeping the last verified checkpoint and --full progress")
	fs.StringVar(&c.Policy, "policy", "", "C2SP tlog-policy file: the checkpoint must meet its witness quorum")
	keyFile := fs.String("api-key-file", "", "file holding the API key (default: env ACCESSLEDGER_AUDIT_API_KEY)")
	fs.BoolVar(&c.Full, "full", false, "download every tile and entry bundle and recompute the whole tree")
	fs.BoolVar(&c.Follow, "follow", false, "keep auditing every --interval until interrupted")
	fs.DurationVar(&c.Interval, "interval", time.Minute, "time between audits with --follow")
	fs.StringVar(&c.Webhook, "webhook", "", "with --follow, POST each finding as JSON to this URL")
	fs.StringVar(&c.Compare, "compare", "", "another view to compare with: an auditor's --state directory, or a witness's monitoring URL (its prefix, or the full .../<hex sha256(origin)>/checkpoint)")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	fs.IntVar(&c.Workers, "workers", workersPerProc*runtime.GOMAXPROCS(0), "entry bundles fetched (one connection each) and verified in parallel with --full")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.URL == "":
		return c, errors.New("--url is required: the log's base URL")
	case c.VKey == "":
		return c, errors.New("--vkey is required: the log's verifier key, as GET /v1/log or the operator publishes it")
	case c.State == "":
		return c, errors.New("--state is required: a directory where the auditor keeps what it verified")
	case c.Interval < time.Second:
		return c, fmt.Errorf("--interval %s is below 1s", c.Interval)
	case c.Workers < 1:
		return c, fmt.Errorf("--workers %d is below 1", c.Workers)
	case c.Webhook != "" && !c.Follow:
		return c, errors.New("--webhook needs --follow: findings of a single audit go to its output and exit status")
	}
	// Checked now, not when the first finding is to be posted, hours later.
	if c.Webhook != "" {
		if u, err := url.Parse(c.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, errors.New("--webhook must be an absolute http or https URL")
		}
	}
	c.APIKey = getenv("ACCESSLEDGER_AUDIT_API_KEY")
	if *keyFile != "" {
		raw, err := os.ReadFile(*keyFile)
		if err != nil {
			return c, fmt.Errorf("reading the API key: %w", err)
		}
		c.APIKey = strings.TrimSpace(string(raw))
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		c.Progress = true
	}
	return c, nil
}

// Finding kinds: what an audit can find wrong.
const (
	findingSplitView      = "split_view"      // two signed checkpoints that cannot both be true
	findingInconsistent   = "inconsistent"    // a consistency proof that does not verify
	findingRollback       = "rollback"        // the log serves a smaller checkpoint than one it served before
	findingSignature      = "bad_signature"   // the checkpoint does not verify with the log's key
	findingQuorum         = "witness_quorum"  // the witness policy's quorum is not met
	findingTile           = "tile_mismatch"   // a served hash tile differs from the one recomputed, or is not a tile (checkTileSize)
	findingEntry          = "invalid_entry"   // an entry is not a valid leaf
	findingRoot           = "root_mismatch"   // the recomputed root differs from the checkpoint's
	findingUnavailable    = "unavailable"     // the server did not serve what the audit needs
	findingCompareMissing = "compare_failure" // the other view could not be read
)

// finding is one thing an audit found wrong. Evidence, when present, is
// what a third party needs to check it: signed checkpoints and proofs.
type finding struct {
	Kind     string    `json:"kind"`
	Message  string    `json:"message"`
	Evidence *evidence `json:"evidence,omitempty"`
}

type evidence struct {
	Old   string   `json:"old_checkpoint,omitempty"`
	New   string   `json:"new_checkpoint,omitempty"`
	Proof []string `json:"proof,omitempty"`
}

// auditReport is what one audit prints.
type auditReport struct {
	Time       time.Time     `json:"time"`
	URL        string        `json:"url"`
	Origin     string        `json:"origin"`
	Size       uint64        `json:"size"`
	RootHash   string        `json:"root_hash"`
	Previous   *uint64       `json:"previous_size,omitempty"`
	Cosigners  []string      `json:"cosigners,omitempty"`
	QuorumMet  *bool         `json:"quorum_met,omitempty"`
	Full       *fullReport   `json:"full,omitempty"`
	Compared   string        `json:"compared_with,omitempty"`
	Findings   []finding     `json:"findings"`
	OK         bool          `json:"ok"`
	Took       time.Duration `json:"-"`
	TookMillis int64         `json:"took_ms"`
}

type fullReport struct {
	Leaves         uint64  `json:"leaves"`
	Resumed        uint64  `json:"resumed_from"`
	Tiles          uint64  `json:"tiles"`
	Seconds        float64 `json:"seconds"`
	LeavesPerSecon float64 `json:"leaves_per_second"`

	// Discarded is the size of saved progress found not to agree with
	// the log, checked again from the start (0: none).
	Discarded uint64 `json:"discarded_progress,omitempty"`
}

// auditState is what the auditor keeps in --state/state.json.
type auditState struct {
	Origin     string     `json:"origin"`
	Checkpoint string     `json:"checkpoint"` // the last verified checkpoint, as served
	Full       *fullState `json:"full,omitempty"`
}

// fullState resumes --full: the tree of the first Size leaves (a multiple
// of 256, all verified) as its compact range, and for each tile level the
// hashes of its incomplete tile.
type fullState struct {
	Size    uint64     `json:"size"`
	Range   [][]byte   `json:"range"`
	Pending [][][]byte `json:"pending"`
}

const stateFile = "state.json"

// loadAuditState reads the state in dir: empty if there is none yet, an
// error if there is one but it is damaged or holds no checkpoint.
func loadAuditState(dir string) (*auditState, error) {
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &auditState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading audit state: %w", err)
	}
	var st auditState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("audit state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Checkpoint == "" {
		// Every state the auditor writes holds the checkpoint it
		// verified. Taken for a first run, an emptied one would pin
		// whatever the log serves now: a rollback it would not see.
		return nil, fmt.Errorf("audit state %s holds no checkpoint: it was emptied or damaged; restore it, or remove it to start again, trusting the log's checkpoint anew", filepath.Join(dir, stateFile))
	}
	return &st, nil
}

func saveAuditState(dir string, st *auditState) error {
	raw, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return ledger.WriteFileAtomic(filepath.Join(dir, stateFile), raw, 0o600)
}

// auditor holds what every audit of one log needs.
type auditor struct {
	cfg      auditConfig
	origin   string
	verifier note.Verifier
	policy   *witness.Policy
	fetcher  *client.HTTPFetcher
	base     string     // the log's URL, ending in "/"
	raw      *rawTarget // where --full workers connect themselves; nil: they use http
	http     *http.Client
	stderr   io.Writer
}

// auditCmd is "accessledger audit".
func auditCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := auditFlags(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{err, exitUsage}
	}
	a, err := newAuditor(c, stderr)
	if err != nil {
		return exitError{err, exitUsage}
	}
	if !c.Follow {
		rep := a.audit(ctx)
		a.print(stdout, rep)
		return rep.err()
	}
	var failed error // the worst: a finding against the log outranks an incomplete run
	for {
		rep := a.audit(ctx)
		a.print(stdout, rep)
		if err := rep.err(); err != nil {
			failed = worse(failed, err)
			a.notify(ctx, rep)
			if rep.fatal() {
				return err // a proven split view or inconsistency: stop
			}
		}
		select {
		case <-ctx.Done():
			return failed
		case <-time.After(c.Interval):
		}
	}
}

// worse returns the graver of two runs' errors (either may be nil): a
// finding against the log (exit 1) outranks a run that could not check
// everything (exit 3), so that --follow ends with the worst it saw.
func worse(prev, next error) error {
	var incomplete exitError
	if prev == nil || next != nil && !errors.As(next, &incomplete) {
		return next
	}
	return prev
}

func newAuditor(c auditConfig, stderr io.Writer) (*auditor, error) {
	vkey, err := readVKeyArg(c.VKey)
	if err != nil {
		return nil, err
	}
	c.VKey = vkey
	v, err := note.NewVerifier(c.VKey)
	if err != nil {
		return nil, fmt.Errorf("--vkey %q: %w", c.VKey, err)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--url %q: want an http or https URL", c.URL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: boundedBodies{&http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 4 * c.Workers,
		IdleConnTimeout:     30 * time.Second,
	}}}
	f, err := client.NewHTTPFetcher(u, hc)
	if err != nil {
		return nil, err
	}
	if c.APIKey != "" {
		f.SetAuthorizationHeader("Bearer " + c.APIKey)
	}
	a := &auditor{cfg: c, origin: v.Name(), verifier: v, fetcher: f, base: u.String(), raw: newRawTarget(u), http: hc, stderr: stderr}
	if c.Policy != "" {
		if a.policy, err = loadPolicy(c.Policy); err != nil {
			return nil, err
		}
		if err := vkeyAgreesWithPolicy(strings.TrimSpace(c.VKey), a.policy, c.Policy); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (r *auditReport) add(kind, format string, args ...any) *finding {
	r.Findings = append(r.Findings, finding{Kind: kind, Message: fmt.Sprintf(format, args...)})
	return &r.Findings[len(r.Findings)-1]
}

func (r *auditReport) err() error {
	if len(r.Findings) == 0 {
		return nil
	}
	kinds := make([]string, 0, len(r.Findings))
	incomplete := true
	for _, f := range r.Findings {
		kinds = append(kinds, f.Kind)
		incomplete = incomplete && (f.Kind == findingUnavailable || f.Kind == findingCompareMissing)
	}
	err := fmt.Errorf("the audit found %d problem(s): %s", len(r.Findings), strings.Join(kinds, ", "))
	if incomplete {
		return exitError{err, exitIncomplete}
	}
	return err
}

// Exit statuses of audit besides 0 (verified) and 1 (the log is found at
// fault: a bad signature, an inconsistency, a tile or entry that does not
// verify, the witness quorum not met), so that a scheduler can tell a
// misbehaving log from a server it could not read. verify exits
// exitUsage too, and 1 for a bundle that does not verify.
const (
	exitUsage      = 2 // the command line is wrong
	exitIncomplete = 3 // only unavailable or compare_failure: nothing found against the log, but not all was checked
)

// exitError is an error that ends the command with its own exit status.
type exitError struct {
	err  error
	code int
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// ExitCode is the process's exit status.
func (e exitError) ExitCode() int { return e.code }

// fatal reports a proven misbehaviour: following further is pointless.
func (r *auditReport) fatal() bool {
	for _, f := range r.Findings {
		if f.Evidence != nil {
			return true
		}
	}
	return false
}

// audit runs one audit. Its findings are in the report. The served
// checkpoint is saved once its signature, the witness policy and its
// consistency with the saved one verify; --full progress as it goes.
func (a *auditor) audit(ctx context.Context) *auditReport {
	start := time.Now()
	rep := &auditReport{Time: start.UTC(), URL: a.cfg.URL, Origin: a.origin, Findings: []finding{}}
	defer func() {
		rep.OK = len(rep.Findings) == 0
		rep.Took = time.Since(start)
		rep.TookMillis = rep.Took.Milliseconds()
	}()
	st, err := loadAuditState(a.cfg.State)
	if err != nil {
		rep.add(findingUnavailable, "%v", err)
		return rep
	}
	if st.Origin != "" && st.Origin != a.origin {
		rep.add(findingUnavailable, "the state in %s is of the log %q, not %q: use another --state directory", a.cfg.State, st.Origin, a.origin)
		return rep
	}
	raw, err := a.fetcher.ReadCheckpoint(ctx)
	if err != nil {
		rep.add(findingUnavailable, "fetching the checkpoint: %v%s", err, a.keyHint(err))
		return rep
	}
	cp, _, _, err := log.ParseCheckpoint(raw, a.origin, a.verifier)
	if err == nil {
		// ParseCheckpoint checks the log key's first line only.
		err = witness.VerifyKnownLines(raw, a.verifier)
	}
	if err != nil {
		rep.add(findingSignature, "the served checkpoint does not verify with the log's key %s: %v\n%s", a.cfg.VKey, err, raw)
		return rep
	}
	rep.Size, rep.RootHash = cp.Size, base64.StdEncoding.EncodeToString(cp.Hash)
	if a.policy != nil {
		cosigners, err := a.policy.Cosigners(raw)
		met := err == nil && a.policy.Satisfied(func(i int) bool { return contains(cosigners, i) })
		for _, i := range cosigners {
			rep.Cosigners = append(rep.Cosigners, a.policy.Witnesses[i].Name)
		}
		rep.QuorumMet = &met
		switch {
		case err != nil:
			rep.add(findingQuorum, "a witness cosignature on the checkpoint does not verify: %v", err)
		case !met:
			var missing []string
			for i, w := range a.policy.Witnesses {
				if !contains(cosigners, i) {
					missing = append(missing, w.Name)
				}
			}
			rep.add(findingQuorum, "the checkpoint of size %d is cosigned by %d witness(es) (%s), which does not meet the policy's quorum; no cosignature from %s",
				cp.Size, len(cosigners), strings.Join(rep.Cosigners, ", "), strings.Join(missing, ", "))
		}
	}

	// Consistency with what this auditor verified before.
	if st.Checkpoint != "" {
		old, _, _, err := log.ParseCheckpoint([]byte(st.Checkpoint), a.origin, a.verifier)
		if err != nil {
			rep.add(findingUnavailable, "the stored checkpoint no longer verifies (%v): the state in %s is damaged", err, a.cfg.State)
			return rep
		}
		prev := old.Size
		rep.Previous = &prev
		a.checkConsistent(ctx, rep, []byte(st.Checkpoint), old, raw, cp, "the checkpoint this auditor verified before")
	}
	if a.cfg.Compare != "" {
		a.compare(ctx, rep, raw, cp)
	}
	if len(rep.Findings) > 0 {
		return rep
	}
	// The checkpoint verifies and is consistent with what this auditor
	// held: keep it now, whatever --full finds, so that every later view
	// must extend it. Kept only after a run that succeeds, a log could fail
	// one --full run on purpose (a bundle it does not serve) and show a
	// conflicting tree to the next.
	a.keepCheckpoint(rep, st, raw, cp)
	if a.cfg.Full && len(rep.Findings) == 0 {
		a.full(ctx, rep, st, cp)
		if resumed := rep.Full.Resumed; resumed > 0 && treeFinding(rep) && ctx.Err() == nil {
			// The saved progress is what disagrees as much as the log
			// may be: check from the start before accusing the log.
			fmt.Fprintf(a.stderr, "audit --full: a mismatch after resuming at leaf %d of the progress saved in %s; checking the whole tree again before reporting it\n", resumed, a.cfg.State)
			rep.Findings = rep.Findings[:0]
			// Forgotten now, not once the check from the start ends: a
			// check cut short kept it, and every run resumed from it.
			st.Full = nil
			if err := saveAuditState(a.cfg.State, st); err != nil {
				rep.add(findingUnavailable, "dropping the saved --full progress: %v", err)
				return rep
			}
			a.full(ctx, rep, st, cp)
			rep.Full.Discarded = resumed
			if len(rep.Findings) == 0 {
				fmt.Fprintf(a.stderr, "audit --full: the log verifies from the start: the progress saved in %s was damaged, and is replaced\n", a.cfg.State)
			}
		}
	}
	if a.cfg.Full && len(rep.Findings) == 0 {
		// The --full progress, up to the checkpoint's size.
		if err := saveAuditState(a.cfg.State, st); err != nil {
			rep.add(findingUnavailable, "saving the audit state: %v", err)
		}
	}
	return rep
}

// keyHint says what to do about a request the server refused for want of
// an API key, or for the key given.
func (a *auditor) keyHint(err error) string {
	// The fetcher ends its error with the status code; get with the
	// status line.
	msg := err.Error()
	if !strings.HasSuffix(msg, "): 401") && !strings.HasSuffix(msg, "): 403") &&
		!strings.Contains(msg, ": 401 Unauthorized") && !strings.Contains(msg, ": 403 Forbidden") {
		return ""
	}
	if a.cfg.APIKey == "" {
		return " (the server wants an API key with the auditor role: set ACCESSLEDGER_AUDIT_API_KEY or --api-key-file)"
	}
	return " (the server refused the API key given: it must be a live key with the auditor role)"
}

// keepCheckpoint saves cp as the checkpoint this auditor verified, unless
// the one it holds is larger (a rollback is a finding, never saved over).
func (a *auditor) keepCheckpoint(rep *auditReport, st *auditState, raw []byte, cp *log.Checkpoint) {
	if st.Checkpoint != "" {
		if old, _, _, _ := log.ParseCheckpoint([]byte(st.Checkpoint), a.origin, a.verifier); old != nil && old.Size > cp.Size {
			return
		}
	}
	st.Origin, st.Checkpoint = a.origin, string(raw)
	if err := saveAuditState(a.cfg.State, st); err != nil {
		rep.add(findingUnavailable, "saving the audit state: %v", err)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkConsistent checks that two signed checkpoints of the log can both
// be true: the same root at the same size, or a consistency proof (built
// from the served tiles) from the smaller to the larger. A failure is a
// finding with both checkpoints (and the proof) as evidence.
func (a *auditor) checkConsistent(ctx context.Context, rep *auditReport, oldRaw []byte, old *log.Checkpoint, newRaw []byte, cp *log.Checkpoint, what string) {
	ev := &evidence{Old: string(oldRaw), New: string(newRaw)}
	switch {
	case old.Size == cp.Size:
		if !bytes.Equal(old.Hash, cp.Hash) {
			f := rep.add(findingSplitView, "%s and the served checkpoint both have size %d but different root hashes; both are signed by the log", what, cp.Size)
			f.Evidence = ev
		}
		return
	case old.Size > cp.Size:
		f := rep.add(findingRollback, "the log serves a checkpoint of size %d, smaller than %s (size %d)", cp.Size, what, old.Size)
		// Prove the smaller is a prefix of the larger, from tiles of the
		// larger tree, if the server still serves them.
		p, err := a.proveConsistency(ctx, cp.Size, old.Size)
		if err != nil {
			// Tiles of the larger tree not served: a rollback, neither
			// proven consistent nor proven not.
			f.Message += fmt.Sprintf("; whether it is a prefix of it could not be checked: building the consistency proof from the served tiles: %v", err)
			if mt := (*malformedTileError)(nil); errors.As(err, &mt) {
				a.proofNotBuilt(rep, err, cp.Size, old.Size, what)
			}
			return
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, old.Size, p, cp.Hash, old.Hash); err != nil {
			f.Kind = findingInconsistent
			f.Message += fmt.Sprintf("; and they are not consistent: %v", evbundle.ProofError(err))
			f.Evidence = ev
			ev.Proof = b64List(p)
		}
		return
	}
	p, err := a.proveConsistency(ctx, old.Size, cp.Size)
	if err != nil {
		a.proofNotBuilt(rep, err, old.Size, cp.Size, what)
		return
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
		f := rep.add(findingInconsistent, "the served checkpoint (size %d) is not an extension of %s (size %d): %v", cp.Size, what, old.Size, evbundle.ProofError(err))
		ev.Proof = b64List(p)
		f.Evidence = ev
	}
}

// proveConsistency builds the consistency proof from size from to size to
// from the served tiles of the tree of size to. A served tile that is not
// one (not 32 bytes for each of its hashes) is a *malformedTileError.
func (a *auditor) proveConsistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	var malformed error
	read := func(ctx context.Context, level, index uint64, width uint8) ([]byte, error) {
		tile, err := a.fetcher.ReadTile(ctx, level, index, width)
		if err != nil {
			return nil, err
		}
		tile = firstHashes(tile, width)
		if err := checkTileSize(tile, width); err != nil {
			malformed = &malformedTileError{path: layout.TilePath(level, index, width), err: err}
			return nil, malformed
		}
		return tile, nil
	}
	pb, err := client.NewProofBuilder(ctx, to, read)
	if err != nil {
		return nil, err
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	if malformed != nil {
		// The builder keeps only the text of its fetcher's errors.
		return nil, malformed
	}
	return p, err
}

// malformedTileError is a served hash tile that is not one.
type malformedTileError struct {
	path string
	err  error
}

func (e *malformedTileError) Error() string {
	return fmt.Sprintf("hash tile %s is malformed: %v", e.path, e.err)
}

// checkTileSize checks that tile is a hash tile of width hashes (0: a
// full tile of 256), as tlog-tiles defines it: 32 bytes for each, and
// nothing more. Every tile the audit reads is checked so, whether it
// builds a proof or is compared with the recomputed tree: a tile the log
// serves that is not one is the log's fault (tile_mismatch). A body cut
// short in transit is not this: it fails to read (unavailable).
func checkTileSize(tile []byte, width uint8) error {
	n := int(width)
	if n == 0 {
		n = layout.TileWidth
	}
	if len(tile) != 32*n {
		return fmt.Errorf("it has %d bytes, want %d hashes of 32 bytes (%d bytes)", len(tile), n, 32*n)
	}
	return nil
}

// proofNotBuilt reports why the consistency proof from size from to size
// to, between the served checkpoint and what, could not be built from the
// served tiles: a malformed tile is a finding against the log, as --full
// finds it; any other failure to read them leaves the check undone.
func (a *auditor) proofNotBuilt(rep *auditReport, err error, from, to uint64, what string) {
	if mt := (*malformedTileError)(nil); errors.As(err, &mt) {
		rep.add(findingTile, "%v (read to build the consistency proof from size %d to %d, between the served checkpoint and %s)", mt, from, to, what)
		return
	}
	rep.add(findingUnavailable, "building the consistency proof from size %d to %d, between the served checkpoint and %s, from the served tiles: %v%s", from, to, what, err, a.keyHint(err))
}

func b64List(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h)
	}
	return out
}

// compare checks the served checkpoint against another view of the log:
// another auditor's state directory or a witness's monitoring read.
func (a *auditor) compare(ctx context.Context, rep *auditReport, raw []byte, cp *log.Checkpoint) {
	var other []byte
	var err error
	if fi, serr := os.Stat(a.cfg.Compare); serr == nil && fi.IsDir() {
		var st *auditState
		if st, err = loadAuditState(a.cfg.Compare); err == nil {
			if st.Checkpoint == "" {
				err = errors.New("it holds no checkpoint yet")
			}
			other = []byte(st.Checkpoint)
		}
	} else {
		other, err = a.fetchMonitoring(ctx, a.cfg.Compare)
	}
	rep.Compared = a.cfg.Compare
	if err != nil {
		rep.add(findingCompareMissing, "reading the other view %s: %v", a.cfg.Compare, err)
		return
	}
	oc, _, _, err := log.ParseCheckpoint(other, a.origin, a.verifier)
	if err != nil {
		rep.add(findingCompareMissing, "the other view's checkpoint does not verify with the log's key: %v", err)
		return
	}
	what := "the checkpoint of " + a.cfg.Compare
	if oc.Size > cp.Size {
		// The other view is ahead: the served tree must extend to it.
		a.checkAhead(ctx, rep, raw, cp, other, oc, what)
		return
	}
	a.checkConsistent(ctx, rep, other, oc, raw, cp, what)
}

// checkAhead checks a checkpoint larger than the served one: the served
// tiles must prove it consistent. A proof built from them that does not
// verify shows this auditor a different tree than the other view saw: a
// split view, with the proof. Tiles that could not be read prove nothing
// (a mirror or a cache that lags behind the other view does not serve
// them yet, a server may fail to answer): the check is left undone, as
// checkConsistent leaves it.
func (a *auditor) checkAhead(ctx context.Context, rep *auditReport, raw []byte, cp *log.Checkpoint, other []byte, oc *log.Checkpoint, what string) {
	p, err := a.proveConsistency(ctx, cp.Size, oc.Size)
	if err != nil {
		a.proofNotBuilt(rep, err, cp.Size, oc.Size, what)
		return
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, oc.Size, p, cp.Hash, oc.Hash); err != nil {
		f := rep.add(findingSplitView, "%s (size %d) does not extend the served checkpoint (size %d): the consistency proof built from the served tiles does not verify: %v",
			what, oc.Size, cp.Size, evbundle.ProofError(err))
		f.Evidence = &evidence{Old: string(raw), New: string(other), Proof: b64List(p)}
	}
}

// fetchMonitoring reads a witness's latest cosigned checkpoint of the log:
// the URL as given if it ends in /checkpoint, else its monitoring prefix.
func (a *auditor) fetchMonitoring(ctx context.Context, u string) ([]byte, error) {
	if !strings.HasSuffix(u, "/checkpoint") {
		sum := sha256.Sum256([]byte(a.origin))
		u = strings.TrimSuffix(u, "/") + "/" + hex.EncodeToString(sum[:]) + "/checkpoint"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, nil
}

// print writes the report: JSON, or text with evidence blocks in the
// style of the Go checksum database client's security errors.
func (a *auditor) print(w io.Writer, r *auditReport) {
	if a.cfg.JSON {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "audit of %s (%s) at %s\n", r.Origin, r.URL, r.Time.Format(time.RFC3339))
	if r.RootHash != "" {
		fmt.Fprintf(w, "checkpoint: size %d, root %s", r.Size, r.RootHash)
		if r.Previous != nil {
			fmt.Fprintf(w, " (previously verified: size %d)", *r.Previous)
		}
		fmt.Fprintln(w)
	}
	if r.QuorumMet != nil {
		fmt.Fprintf(w, "witnesses: %d cosigned (%s), quorum met: %v\n", len(r.Cosigners), strings.Join(r.Cosigners, ", "), *r.QuorumMet)
	}
	if r.Full != nil {
		fmt.Fprintf(w, "full: %d leaves and %d tiles recomputed in %.2fs (%.0f leaves/s), resumed at %d\n",
			r.Full.Leaves, r.Full.Tiles, r.Full.Seconds, r.Full.LeavesPerSecon, r.Full.Resumed)
		if r.Full.Discarded > 0 {
			fmt.Fprintf(w, "full: the progress saved up to leaf %d did not agree with the log, and the whole tree was checked again\n", r.Full.Discarded)
		}
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "\n%s: %s\n", strings.ToUpper(f.Kind), f.Message)
		if e := f.Evidence; e != nil {
			fmt.Fprintf(w, "\nSECURITY ERROR\nlog misbehavior detected!\n\n")
			if e.Old != "" {
				fmt.Fprintf(w, "old checkpoint:\n\t%s\n", strings.ReplaceAll(strings.TrimSuffix(e.Old, "\n"), "\n", "\n\t"))
			}
			if e.New != "" {
				fmt.Fprintf(w, "new checkpoint:\n\t%s\n", strings.ReplaceAll(strings.TrimSuffix(e.New, "\n"), "\n", "\n\t"))
			}
			if len(e.Proof) > 0 {
				fmt.Fprintf(w, "proof of misbehavior (consistency proof built from the log's tiles):\n\t%s\n", strings.Join(e.Proof, "\n\t"))
			}
		}
	}
	if r.OK {
		fmt.Fprintf(w, "OK (%s)\n", r.Took.Round(time.Millisecond))
	}
}

// notify posts a report with findings to the webhook, if any.
func (a *auditor) notify(ctx context.Context, r *auditReport) {
	if a.cfg.Webhook == "" {
		return
	}
	b, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Webhook, bytes.NewReader(b))
	if err != nil {
		fmt.Fprintf(a.stderr, "audit: webhook: %v\n", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		fmt.Fprintf(a.stderr, "audit: webhook: %v\n", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(a.stderr, "audit: webhook answered %s\n", resp.Status)
	}
}

// treeFinding reports whether rep holds a finding of the full check's
// recomputed tree (which damaged saved progress would also cause).
func treeFinding(rep *auditReport) bool {
	for _, f := range rep.Findings {
		switch f.Kind {
		case findingTile, findingRoot:
			return true
		}
	}
	return false
}

// full recomputes the whole tree from the entry bundles: every entry must
// be a valid leaf, every served hash tile must equal the recomputed one,
// and the root must equal the checkpoint's. It resumes from the state's
// verified prefix, saving progress as it goes.
func (a *auditor) full(ctx context.Context, rep *auditReport, st *auditState, cp *log.Checkpoint) {
	start := time.Now()
	parent := ctx
	ctx, stop := context.WithCancel(ctx) // stops the bundle workers on an early return
	defer stop()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	var rng *compact.Range
	var pending [][][]byte
	var from uint64
	if fs := st.Full; fs != nil && fs.Size <= cp.Size && fs.Size%layout.EntryBundleWidth == 0 {
		r, err := rf.NewRange(0, fs.Size, fs.Range)
		if err == nil {
			rng, pending, from = r, fs.Pending, fs.Size
		}
	}
	if rng == nil {
		rng = rf.NewEmptyRange(0)
	}
	fr := &fullReport{Resumed: from}
	rep.Full = fr
	defer func() {
		fr.Leaves = rng.End() - from
		fr.Seconds = time.Since(start).Seconds()
		fr.LeavesPerSecon = float64(fr.Leaves) / max(fr.Seconds, 1e-9)
	}()
	v := &treeVerifier{ctx: ctx, a: a, rep: rep, pending: pending, size: cp.Size}
	// whole is where a later run resumes: the last full bundle.
	whole := cp.Size / layout.EntryBundleWidth * layout.EntryBundleWidth
	var snap *fullState
	if from == whole {
		snap = &fullState{Size: from, Range: slices.Clone(rng.Hashes()), Pending: v.snapshot()}
	}
	lastSave := time.Now()
	// saveProgress saves the verified prefix (whole bundles) of a run that
	// stops short, unless it stopped at a finding about the log: a run
	// that could not read a bundle, or was interrupted, resumes there.
	saveProgress := func() {
		end := rng.End()
		if end <= from || end%layout.EntryBundleWidth != 0 || !onlyUnavailable(rep) {
			return
		}
		st.Full = &fullState{Size: end, Range: slices.Clone(rng.Hashes()), Pending: v.snapshot()}
		if err := saveAuditState(a.cfg.State, st); err != nil {
			rep.add(findingUnavailable, "saving --full progress: %v", err)
		}
	}
	bundles := bundlesOf(cp.Size)
	for res := range a.verifyBundles(ctx, from/layout.EntryBundleWidth, bundles, cp.Size) {
		if res.err != nil {
			rep.add(res.kind, "%v", res.err)
			saveProgress()
			return
		}
		if res.root != nil {
			// A full bundle: the worker computed its subtree root, the
			// node at tree level 8 that tile level 1 holds.
			v.visit(compact.NewNodeID(layout.TileHeight, res.index), res.root)
			sub, err := rf.NewRange(res.index*layout.EntryBundleWidth, (res.index+1)*layout.EntryBundleWidth, [][]byte{res.root})
			if err == nil {
				err = rng.AppendRange(sub, v.visit)
			}
			if err != nil {
				rep.add(findingUnavailable, "recomputing the tree: %v", err)
				return
			}
		}
		for _, h := range res.hashes {
			if err := rng.Append(h, v.visit); err != nil {
				rep.add(findingUnavailable, "recomputing the tree: %v", err)
				return
			}
		}
		fr.Tiles++ // the level-0 tile, compared by the worker
		if len(rep.Findings) > 0 {
			return
		}
		if a.cfg.Progress {
			fmt.Fprintf(a.stderr, "\raudit --full: %d/%d leaves (%.0f%%)", rng.End(), cp.Size, 100*float64(rng.End())/float64(max(cp.Size, 1)))
		}
		if end := rng.End(); end%layout.EntryBundleWidth == 0 && (end == whole || time.Since(lastSave) > 2*time.Second) {
			snap = &fullState{Size: end, Range: slices.Clone(rng.Hashes()), Pending: v.snapshot()}
			if end != whole {
				// Progress of an unfinished run: its prefix is checked
				// against the served tiles, and against the signed root
				// when a run completes.
				st.Full = snap
				if err := saveAuditState(a.cfg.State, st); err != nil {
					rep.add(findingUnavailable, "saving --full progress: %v", err)
					return
				}
				lastSave = time.Now()
			}
		}
	}
	if a.cfg.Progress {
		fmt.Fprintln(a.stderr)
	}
	if err := parent.Err(); err != nil {
		rep.add(findingUnavailable, "interrupted at %d leaves: %v (run again to resume)", rng.End(), err)
		saveProgress()
		return
	}
	if rng.End() != cp.Size {
		rep.add(findingUnavailable, "recomputed %d leaves, want %d", rng.End(), cp.Size)
		return
	}
	// Every incomplete tile above level 0 is served as a partial tile.
	fr.Tiles += v.checkPartials(ctx)
	if len(rep.Findings) > 0 {
		return
	}
	// An empty range has no root; the empty tree's is SHA-256 of nothing
	// (RFC 6962, 2.1), which a log of size 0 signs.
	root := rfc6962.DefaultHasher.EmptyRoot()
	if cp.Size > 0 {
		var err error
		if root, err = rng.GetRootHash(nil); err != nil {
			rep.add(findingUnavailable, "computing the root: %v", err)
			return
		}
	}
	if !bytes.Equal(root, cp.Hash) {
		rep.add(findingRoot, "the root recomputed from the %d entries is %x, but the checkpoint says %x", cp.Size, root, cp.Hash)
		return
	}
	fr.Tiles += v.fullTiles
	st.Full = snap // saved with the checkpoint by audit
}

// bundlesOf returns the number of entry bundles of a tree of size leaves,
// the last one partial: size/256 rounded up, without the overflow of
// (size+255)/256 for a size the log signs but cannot hold.
func bundlesOf(size uint64) uint64 {
	return size/layout.EntryBundleWidth + min(size%layout.EntryBundleWidth, 1)
}

// onlyUnavailable reports whether every finding of rep is that the server
// did not serve something.
func onlyUnavailable(rep *auditReport) bool {
	for _, f := range rep.Findings {
		if f.Kind != findingUnavailable {
			return false
		}
	}
	return true
}

// treeVerifier checks the hash tiles above level 0 as the compact range
// creates their nodes: tile level L holds the nodes of tree level 8L.
type treeVerifier struct {
	ctx       context.Context
	a         *auditor
	rep       *auditReport
	pending   [][][]byte // [tile level] hashes of its incomplete tile
	size      uint64
	fullTiles uint64
}

func (v *treeVerifier) snapshot() [][][]byte {
	out := make([][][]byte, len(v.pending))
	for i, p := range v.pending {
		out[i] = append([][]byte(nil), p...)
	}
	return out
}

// visit is the compact range's visitor: it gathers the nodes of tile
// levels 1 and up and checks each tile once it is full. (Level 0 is
// checked per bundle by the workers.)
func (v *treeVerifier) visit(id compact.NodeID, hash []byte) {
	if id.Level == 0 || id.Level%layout.TileHeight != 0 || len(v.rep.Findings) > 0 {
		return
	}
	level := int(id.Level / layout.TileHeight)
	for len(v.pending) <= level {
		v.pending = append(v.pending, nil)
	}
	v.pending[level] = append(v.pending[level], bytes.Clone(hash))
	if len(v.pending[level]) == layout.TileWidth {
		index := id.Index / layout.TileWidth
		v.compareTile(v.ctx, uint64(level), index, 0, v.pending[level])
		v.pending[level] = nil // snapshots share the old backing array
		v.fullTiles++
	}
}

// checkPartials compares the incomplete tiles of every level with the
// served partial tiles.
func (v *treeVerifier) checkPartials(ctx context.Context) uint64 {
	var n uint64
	// Level 0's partial tile is checked by the workers; the others here.
	for level := 1; level < len(v.pending); level++ {
		p := v.pending[level]
		if len(p) == 0 {
			continue
		}
		index := (v.size >> (layout.TileHeight * level)) / layout.TileWidth
		v.compareTile(ctx, uint64(level), index, uint8(len(p)), p)
		n++
	}
	return n
}

func (v *treeVerifier) compareTile(ctx context.Context, level, index uint64, width uint8, want [][]byte) {
	served, err := v.a.fetcher.ReadTile(ctx, level, index, width)
	if err != nil {
		v.rep.add(findingUnavailable, "fetching tile %s: %v%s", layout.TilePath(level, index, width), err, v.a.keyHint(err))
		return
	}
	served = firstHashes(served, width)
	if err := checkTileSize(served, width); err != nil {
		v.rep.add(findingTile, "%v", &malformedTileError{path: layout.TilePath(level, index, width), err: err})
		return
	}
	if err := compareHashes(served, want); err != nil {
		v.rep.add(findingTile, "hash tile %s differs from the tile recomputed from the entry bundles: %v", layout.TilePath(level, index, width), err)
	}
}

// firstHashes returns the partial tile of width hashes that tile stands
// for. tlog-tiles lets a log delete a partial tile once the full tile
// exists, and the fetcher then reads the full one (as it does when the
// tile filled after the checkpoint): its first width hashes are the
// partial tile. Anything else is returned as served, to be compared.
func firstHashes(tile []byte, width uint8) []byte {
	if width != 0 && len(tile) == 32*layout.TileWidth {
		return tile[:32*int(width)]
	}
	return tile
}

// firstEntries returns the first n entries of an entry bundle read for a
// partial width if the fetcher read the full bundle instead (as for
// firstHashes): exactly 256 well-framed entries and nothing after them.
// Anything else is returned as served, to be checked whole: a partial
// bundle with more after its n entries is not one.
func firstEntries(bundle []byte, n uint64) []byte {
	off, cut := 0, 0
	for i := range layout.EntryBundleWidth {
		if off+2 > len(bundle) {
			return bundle
		}
		off += 2 + int(binary.BigEndian.Uint16(bundle[off:]))
		if off > len(bundle) {
			return bundle
		}
		if uint64(i+1) == n {
			cut = off
		}
	}
	if off != len(bundle) || n == 0 || n >= layout.EntryBundleWidth {
		return bundle
	}
	return bundle[:cut]
}

// compareHashes compares a served tile with the recomputed hashes.
func compareHashes(served []byte, want [][]byte) error {
	if len(served) != 32*len(want) {
		return fmt.Errorf("it has %d bytes, want %d hashes", len(served), len(want))
	}
	for i, h := range want {
		if !bytes.Equal(served[32*i:32*i+32], h) {
			return fmt.Errorf("hash %d is %x, recomputed %x", i, served[32*i:32*i+32], h)
		}
	}
	return nil
}

// bundleResult is one verified entry bundle, or what is wrong with it:
// for a full bundle the root of its subtree (tree level 8; the worker
// compared its leaf hashes with the served level-0 tile), for the partial
// last one its leaf hashes in order.
type bundleResult struct {
	index  uint64
	root   []byte
	hashes [][]byte
	kind   string
	err    error
}

// maxBundleBytes bounds an entry bundle, compressed or not: 256 entries
// of at most 65,535 bytes, each after its 2-byte length.
const maxBundleBytes = layout.EntryBundleWidth * (1<<16 + 1)

// verifyBundles fetches and checks bundles [first, end) with cfg.Workers
// workers, each with its own connection, and delivers them in order, at
// most 2×cfg.Workers ahead of the reader. Each worker fetches its bundle
// (zstd-compressed if the server offers it), checks every entry is a
// valid leaf, hashes the leaves, compares them with the served level-0
// tile and computes the bundle's subtree root. The channel closes after
// the last bundle, the first failure, or when ctx is done; the caller
// cancels ctx if it stops reading early.
func (a *auditor) verifyBundles(ctx context.Context, first, end, size uint64) <-chan bundleResult {
	workers := a.cfg.Workers
	window := uint64(2 * workers)
	out := make(chan bundleResult, workers)
	go func() {
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		// The frames' checksums (xxhash, 2 % of the auditor's CPU) are
		// not checked on the way: the leaf hashes are. A bundle that
		// fails its check is decoded again with them (damagedFrame), so
		// that a damaged frame is reported as what it is.
		dec, err := newBundleDecoder(workers)
		if err != nil {
			cancel()
			out <- bundleResult{index: first, kind: findingUnavailable, err: fmt.Errorf("zstd decoder: %w", err)}
			return
		}
		slots := make([]chan bundleResult, window)
		for i := range slots {
			slots[i] = make(chan bundleResult, 1)
		}
		// A token is a free slot: at most window bundles are between
		// dispatch and delivery, so a worker never waits on its slot.
		tokens := make(chan struct{}, window)
		for range window {
			tokens <- struct{}{}
		}
		jobs := make(chan uint64)
		var wg sync.WaitGroup
		// Shutdown order: stop dispatching and fetching, wait for the
		// workers, then release the decoder.
		defer func() {
			cancel()
			wg.Wait()
			dec.Close()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(jobs)
			for i := first; i < end; i++ {
				select {
				case <-tokens:
				case <-ctx.Done():
					return
				}
				select {
				case jobs <- i:
				case <-ctx.Done():
					return
				}
			}
		}()
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := &bundleWorker{a: a, dec: dec}
				if a.raw != nil {
					w.conn = &auditConn{t: a.raw, apiKey: a.cfg.APIKey, timeout: a.http.Timeout}
					defer w.conn.close()
				}
				// While it checks one bundle, a worker with its own
				// connection has the server prepare the next one: once
				// a bundle is fetched, it takes the next job if one is
				// ready (never waiting: the window's tokens may all be
				// out) and sends its requests.
				var next uint64
				haveNext := false
				if w.conn != nil {
					w.fetched = func() {
						if haveNext {
							return
						}
						select {
						case j, ok := <-jobs:
							if ok {
								next, haveNext = j, true
								if j < size/layout.EntryBundleWidth { // a full bundle
									w.conn.sendPair(ctx, bundlePair(j))
								}
							}
						default:
						}
					}
				}
				for {
					i := next
					if haveNext {
						haveNext = false
					} else {
						var ok bool
						if i, ok = <-jobs; !ok {
							break
						}
					}
					slots[i%window] <- w.verify(ctx, i, size)
				}
			}()
		}
		for i := first; i < end; i++ {
			var r bundleResult
			select {
			case r = <-slots[i%window]:
			case <-ctx.Done():
				return
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
			if r.err != nil {
				return
			}
			tokens <- struct{}{}
		}
	}()
	return out
}

// bundlePair is the pipelined fetch of full entry bundle index and its
// level-0 tile.
func bundlePair(index uint64) pair {
	return pair{path1: layout.EntriesPath(index, 0), zstd1: true, path2: layout.TilePath(0, index, 0)}
}

// bundleWorker is one worker's scratch space, reused from bundle to
// bundle so that checking and hashing a leaf allocates nothing. Owned by
// its worker goroutine.
type bundleWorker struct {
	a    *auditor
	conn *auditConn // its own connection; nil: through a.http
	dec  *zstd.Decoder
	body bytes.Buffer // the bundle as served
	tile bytes.Buffer // its level-0 tile
	// fetched, if set, is called once a full bundle and its tile are
	// read, before they are checked.
	fetched func()
	raw     []byte // the bundle, decompressed
	// compressed: the bundle being checked was served as a zstd frame
	// (in body).
	compressed bool
	hashes     [layout.EntryBundleWidth][32]byte
	// json checks leaf bodies; its 1.7 KB of state is kept rather than
	// cleared for every leaf (12 % of the check).
	json event.JSONValidator
}

// get reads path below the log's URL into buf, on the worker's own
// connection if it has one.
func (w *bundleWorker) get(ctx context.Context, path string, buf *bytes.Buffer, acceptZstd bool) (compressed bool, err error) {
	if w.conn != nil {
		return w.conn.get(ctx, path, buf, acceptZstd)
	}
	return w.a.get(ctx, path, buf, acceptZstd)
}

// leafPrefix is RFC 6962's domain separation of leaf hashes.
const leafPrefix = 0

func (w *bundleWorker) verify(ctx context.Context, index, size uint64) bundleResult {
	a := w.a
	r := bundleResult{index: index}
	width := uint8(0)
	n := uint64(layout.EntryBundleWidth)
	if rest := size - index*layout.EntryBundleWidth; rest < layout.EntryBundleWidth {
		width, n = uint8(rest), rest
	}
	path := layout.EntriesPath(index, width)
	tilePath := layout.TilePath(0, index, width)
	var raw []byte
	tileFetched := false
	w.compressed = false
	if width == 0 {
		var compressed bool
		var err error
		if w.conn != nil {
			// The bundle and its tile in one pipelined exchange.
			compressed, _, err = w.conn.getPair(ctx, bundlePair(index), &w.body, &w.tile)
			tileFetched = err == nil
			if err == nil && w.fetched != nil {
				w.fetched()
			}
		} else {
			compressed, err = w.get(ctx, path, &w.body, true)
		}
		if err != nil {
			what := "entry bundle " + path
			if w.conn != nil {
				what += " and tile " + tilePath
			}
			r.kind, r.err = findingUnavailable, fmt.Errorf("fetching %s: %w%s", what, err, a.keyHint(err))
			return r
		}
		raw = w.body.Bytes()
		if w.compressed = compressed; compressed {
			if w.raw, err = w.dec.DecodeAll(raw, w.raw[:0]); err != nil {
				r.kind, r.err = findingUnavailable, fmt.Errorf("entry bundle %s, served zstd-compressed, does not decompress: %v", path, err)
				return r
			}
			raw = w.raw
		}
	} else {
		// The last, partial bundle; it may have filled since the
		// checkpoint (then the full one is read).
		var err error
		if raw, err = a.fetcher.ReadEntryBundle(ctx, index, width); err != nil {
			r.kind, r.err = findingUnavailable, fmt.Errorf("fetching entry bundle %s: %w%s", path, err, a.keyHint(err))
			return r
		}
		raw = firstEntries(raw, n)
	}
	if r.kind, r.err = w.hashBundle(raw, index, n, path); r.err != nil {
		w.damagedFrame(&r, path)
		return r
	}
	hashes := w.hashes[:n]
	var tile []byte
	var err error
	switch {
	case tileFetched:
		tile = w.tile.Bytes()
	case width == 0:
		if _, err = w.get(ctx, tilePath, &w.tile, false); err == nil {
			tile = w.tile.Bytes()
		}
	default:
		if tile, err = a.fetcher.ReadTile(ctx, 0, index, width); err == nil {
			tile = firstHashes(tile, width)
		}
	}
	if err != nil {
		r.kind, r.err = findingUnavailable, fmt.Errorf("fetching tile %s: %w%s", tilePath, err, a.keyHint(err))
		return r
	}
	if err := checkTileSize(tile, width); err != nil {
		r.kind, r.err = findingTile, &malformedTileError{path: tilePath, err: err}
		return r
	}
	if err := compareLeafHashes(tile, hashes); err != nil {
		r.kind, r.err = findingTile, fmt.Errorf("hash tile %s differs from the leaf hashes of entry bundle %s: %v", tilePath, path, err)
		w.damagedFrame(&r, path)
		return r
	}
	if width != 0 {
		r.hashes = make([][]byte, n)
		for i := range r.hashes {
			r.hashes[i] = bytes.Clone(hashes[i][:])
		}
		return r
	}
	r.root = subtreeRoot(hashes)
	return r
}

// newBundleDecoder returns the --full workers' zstd decoder, for
// concurrency of them at once. It does not check the frames' checksums.
func newBundleDecoder(concurrency int) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(concurrency), zstd.WithDecoderMaxMemory(maxBundleBytes), zstd.IgnoreChecksum(true))
}

// damagedFrame replaces finding r about entry bundle path with "does not
// decompress" if the bundle was served as a zstd frame whose checksum
// fails: the workers decode without checking it (the leaf hashes are
// checked instead), so a damaged frame first shows as bad entries or leaf
// hashes.
func (w *bundleWorker) damagedFrame(r *bundleResult, path string) {
	if !w.compressed {
		return
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBundleBytes))
	if err != nil {
		return
	}
	defer dec.Close()
	if _, err := dec.DecodeAll(w.body.Bytes(), nil); err != nil {
		r.kind, r.err = findingUnavailable, fmt.Errorf("entry bundle %s, served zstd-compressed, does not decompress: %v", path, err)
	}
}

// hashBundle splits the C2SP bytes of entry bundle index, which must hold
// n entries, checks that every entry is a valid leaf and writes the leaf
// hashes to w.hashes[:n]. It allocates nothing unless it fails. raw is
// written to while hashing and restored: it must not be shared.
func (w *bundleWorker) hashBundle(raw []byte, index, n uint64, path string) (kind string, err error) {
	var i uint64
	for off := 0; off < len(raw); i++ {
		if off+2 > len(raw) {
			return findingEntry, fmt.Errorf("entry bundle %s: truncated after %d entries", path, i)
		}
		l := int(binary.BigEndian.Uint16(raw[off:]))
		if off+2+l > len(raw) || i >= n {
			return findingEntry, fmt.Errorf("entry bundle %s: malformed framing at entry %d", path, index*layout.EntryBundleWidth+i)
		}
		e := raw[off+2 : off+2+l]
		off += 2 + l
		if err := validLeaf(&w.json, e); err != nil {
			return findingEntry, fmt.Errorf("entry %d (bundle %s): not a valid leaf: %v", index*layout.EntryBundleWidth+i, path, err)
		}
		// SHA-256(0x00 || e) in one call: the byte before e (the low
		// byte of its length) stands in for the prefix meanwhile.
		lo := raw[off-l-1]
		raw[off-l-1] = leafPrefix
		w.hashes[i] = sha256.Sum256(raw[off-l-1 : off])
		raw[off-l-1] = lo
	}
	if i != n {
		return findingEntry, fmt.Errorf("entry bundle %s has %d entries, want %d", path, i, n)
	}
	return "", nil
}

// subtreeRoot returns the root of the perfect subtree over hashes (a
// power of two of them), computing RFC 6962 interior nodes
// SHA-256(0x01 || left || right) in place: hashes is overwritten.
func subtreeRoot(hashes [][32]byte) []byte {
	var buf [1 + 2*32]byte
	buf[0] = 1
	for m := len(hashes); m > 1; m /= 2 {
		for j := 0; j < m/2; j++ {
			copy(buf[1:], hashes[2*j][:])
			copy(buf[1+32:], hashes[2*j+1][:])
			hashes[j] = sha256.Sum256(buf[:])
		}
	}
	return bytes.Clone(hashes[0][:])
}

// get reads path below the log's URL into buf. With acceptZstd it asks
// for Content-Encoding: zstd and reports whether the server used it;
// otherwise, or if the server does not, buf holds the bytes as the
// resource is defined.
func (a *auditor) get(ctx context.Context, path string, buf *bytes.Buffer, acceptZstd bool) (compressed bool, err error) {
	u := a.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	if a.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.APIKey)
	}
	if acceptZstd {
		req.Header.Set("Accept-Encoding", "zstd")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return false, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	switch ce := resp.Header.Get("Content-Encoding"); {
	case ce == "" || strings.EqualFold(ce, "identity"):
	case acceptZstd && strings.EqualFold(ce, "zstd"):
		compressed = true
	default:
		return false, fmt.Errorf("GET %s: Content-Encoding %q, which was not asked for", u, ce)
	}
	buf.Reset()
	if cl := resp.ContentLength; cl > 0 && cl <= maxBundleBytes {
		buf.Grow(int(cl) + bytes.MinRead)
	}
	m, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBundleBytes+1))
	if err != nil {
		return false, fmt.Errorf("GET %s: %w", u, err)
	}
	if m > maxBundleBytes {
		return false, fmt.Errorf("GET %s: larger than %d bytes", u, maxBundleBytes)
	}
	return compressed, nil
}

// compareLeafHashes compares a served level-0 tile with the leaf hashes.
func compareLeafHashes(served []byte, want [][32]byte) error {
	if len(served) != 32*len(want) {
		return fmt.Errorf("it has %d bytes, want %d hashes", len(served), len(want))
	}
	for i := range want {
		if !bytes.Equal(served[32*i:32*i+32], want[i][:]) {
			return fmt.Errorf("hash %d is %x, recomputed %x", i, served[32*i:32*i+32], want[i])
		}
	}
	return nil
}

// validLeaf checks the leaf envelope, as the log writes it:
// {"kind":"<kind>","received_at":"<RFC 3339 UTC, nanoseconds>","body":<JSON object>},
// an event submitted over the API with "submitted_by":"<key name>" before
// "body" (leaves written before have none).
func validLeaf(sc *event.JSONValidator, e []byte) error {
	rest, ok := bytes.CutPrefix(e, []byte(`{"kind":"`))
	if !ok {
		return errors.New(`it does not start with {"kind":"`)
	}
	i := 0
	for i < len(rest) && (rest[i] >= 'a' && rest[i] <= 'z' || rest[i] == '_') {
		i++
	}
	if i == 0 {
		return errors.New("empty or invalid kind")
	}
	isEvent := string(rest[:i]) == string(event.KindEvent)
	rest, ok = bytes.CutPrefix(rest[i:], []byte(`","received_at":"`))
	if !ok || len(rest) < 30 {
		return errors.New("no received_at after kind")
	}
	if !validTimestamp(rest[:30]) {
		// The fast check certifies only valid timestamps; time.Parse
		// decides (and explains) the rest.
		if _, err := time.Parse("2006-01-02T15:04:05.000000000Z", string(rest[:30])); err != nil {
			return fmt.Errorf("received_at: %v", err)
		}
	}
	rest = rest[30:]
	if by, ok := bytes.CutPrefix(rest, []byte(`","submitted_by":`)); ok && isEvent {
		n := jsonStringLen(by)
		if n == 0 {
			return errors.New("submitted_by is not a non-empty JSON string")
		}
		rest = by[n-1:] // from its closing quote, as after received_at
	}
	body, ok := bytes.CutPrefix(rest, []byte(`","body":`))
	if !ok || len(body) < 3 || body[0] != '{' || body[len(body)-1] != '}' {
		return errors.New("no body object after received_at")
	}
	body = body[:len(body)-1]
	if isEvent && !sc.ValidEvent(body) || !isEvent && !sc.Valid(body) {
		return errors.New("the body is not valid JSON")
	}
	return nil
}

// jsonStringLen returns the length of the non-empty JSON string (quotes
// included) that b starts with, or 0 if it starts with none.
func jsonStringLen(b []byte) int {
	if len(b) < 3 || b[0] != '"' {
		return 0
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			if i == 1 || !jsontext.Value(b[:i+1]).IsValid() {
				return 0
			}
			return i + 1
		}
	}
	return 0
}

// validTimestamp reports whether t is a valid time in the layout
// 2006-01-02T15:04:05.000000000Z, as time.Parse checks it: two-digit
// fields in range, the day within its month (and leap years), nine
// fractional digits. A false answer is not a verdict: call time.Parse.
func validTimestamp(t []byte) bool {
	if len(t) != 30 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != '.' || t[29] != 'Z' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28} {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	num := func(i int) int { return int(t[i]-'0')*10 + int(t[i+1]-'0') }
	year := num(0)*100 + num(2)
	month, day, hour, minute, sec := num(5), num(8), num(11), num(14), num(17)
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month-1]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

// Bounds of what the audited server may send: a checkpoint is a few
// hundred bytes (a few KB with cosignatures), a tile or an entry bundle
// at most 256 hashes or entries of 64 KiB.
const (
	maxCheckpointBody = 1 << 20
	maxTileBody       = 20 << 20
)

// boundedBodies fails a response body that runs past its bound, instead
// of reading whatever a server sends into memory (and a checkpoint of it
// into the report).
type boundedBodies struct{ rt http.RoundTripper }

func (b boundedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	n := int64(maxTileBody)
	if strings.HasSuffix(req.URL.Path, "/checkpoint") {
		n = maxCheckpointBody
	}
	resp.Body = newLimitedBody(resp.Body, n, req.URL.Redacted())
	return resp, nil
}

// limitedBody is http.MaxBytesReader's bound on a response, with an error
// that names the URL rather than a request.
type limitedBody struct {
	io.ReadCloser
	url string
}

func newLimitedBody(rc io.ReadCloser, n int64, url string) limitedBody {
	return limitedBody{http.MaxBytesReader(nil, rc, n), url}
}

func (l limitedBody) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		err = fmt.Errorf("%s: the answer is larger than any the log serves there (%d bytes); not read further", l.url, tooBig.Limit)
	}
	return n, err
}
