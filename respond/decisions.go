package respond

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/accessledger/accessledger/event"
)

// Decisions is the IP decision store served to bouncers in the shape of
// the CrowdSec Local API: the active bans, a change log numbered by
// sequence that bouncers pull from their own cursors, and those cursors
// (one per Bouncer: API key and address).
// Its state lives in the caller's Badger DB under a prefix, and in memory
// (loaded by OpenDecisions), so that a pull costs what changed since the
// bouncer's cursor, not what is active.
//
// Every change is committed to Badger before it is visible and before the
// Recorder hears of it. A decision past its Until ends when the store next
// looks (any call), which logs it as deleted for bouncers. Ended decisions
// and the change log are kept for DecisionsConfig.History, then pruned.
//
// Time is the clock's, as CrowdSec's time.Now, never held at a later time
// seen before: Add's start and Until, the refusal of a decision already
// ended (ErrEnded), expiry and the time an answer counts durations from.
// Bouncers follow changes by sequence number, not by time. If the clock steps back
// (an NTP correction after a jump ahead), a decision that expired under
// the fast clock stays ended, as bouncers were told (in Deleted): the next
// alert on its value bans again. A decision made while the clock was ahead
// keeps its Until. The times of changes and ended decisions that are
// ahead of the clock count as now, so that History prunes them from the
// correction on, not from when real time reaches them.
//
// Its methods are safe for concurrent use; one mutex guards the state,
// and the Recorder is called outside it.
type Decisions struct {
	db    *badger.DB
	pfx   []byte
	cfg   DecisionsConfig
	rec   Recorder
	clock func() time.Time

	mu sync.Mutex // guards everything below
	// broken is set when a failed commit could not be undone by reloading
	// the state from Badger; every call then fails.
	broken  error
	nextID  uint64
	nextSeq uint64
	// floor is the sequence number of the last change pruned (0 if none):
	// a cursor below it missed changes and gets a full answer.
	floor   uint64
	changes []decChange // changes floor+1 … nextSeq-1, in order
	byID    map[uint64]*decEntry
	byKey   map[string]*decEntry
	groups  map[string]*decGroup // by group key (type, scope, value)
	types   []string             // the decision types seen, for lookups by address
	ranges  map[*decEntry]struct{}
	expiry  decHeap     // active decisions by Until
	ended   []*decEntry // ended decisions, in the order they ended, until pruned
	// positions are the bouncers' cursors; perKey counts them by key.
	positions map[Bouncer]*decPosition
	perKey    map[string]int
	// legacy are the keys of cursors stored per API key alone, by
	// earlier versions: deleted by the next sweep, never used.
	legacy [][]byte
	swept  time.Time // when positions were last swept
	// commitHook, set by tests only (export_test.go), runs before each
	// commit of a change; an error fails the commit.
	commitHook func() error
}

// DecisionsConfig configures the decision store. Zero fields take the
// defaults of DefaultDecisionsConfig.
type DecisionsConfig struct {
	// DefaultDuration is how long a decision lasts when its input gives
	// no duration (default 4h).
	DefaultDuration time.Duration `yaml:"default_duration" json:"default_duration"`
	// Allow lists the addresses never banned: a decision on an address or
	// a range that overlaps one of them is refused with ErrAllowListed,
	// and OpenDecisions deletes the active ones made before (as deleted by
	// "accessledger"). Nil means loopback (127.0.0.0/8 and ::1/128); an
	// empty list allows banning anything.
	Allow []netip.Prefix `yaml:"allow" json:"allow"`
	// Origin is the origin bouncers see (default "accessledger").
	Origin string `yaml:"origin" json:"origin"`
	// MaxActive bounds the active decisions (default 1,000,000); Add
	// answers ErrDecisionsFull beyond.
	MaxActive int `yaml:"max_active" json:"max_active"`
	// History is how long ended decisions and the change log are kept
	// (default 24h). A bouncer that has not pulled for longer gets the
	// full list of active decisions, as at its startup, once changes it
	// has not seen were pruned; its position is then forgotten.
	History time.Duration `yaml:"history" json:"history"`
}

// DefaultDecisionsConfig returns the defaults.
func DefaultDecisionsConfig() DecisionsConfig {
	return DecisionsConfig{
		DefaultDuration: 4 * time.Hour,
		Allow:           []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Origin:          "accessledger",
		MaxActive:       1_000_000,
		History:         24 * time.Hour,
	}
}

func (c DecisionsConfig) withDefaults() DecisionsConfig {
	d := DefaultDecisionsConfig()
	if c.DefaultDuration <= 0 {
		c.DefaultDuration = d.DefaultDuration
	}
	if c.Allow == nil {
		c.Allow = d.Allow
	}
	if c.Origin == "" {
		c.Origin = d.Origin
	}
	if c.MaxActive <= 0 {
		c.MaxActive = d.MaxActive
	}
	if c.History <= 0 {
		c.History = d.History
	}
	return c
}

// Recorder records decision changes as response leaves, all of rs or none
// of them. Decisions calls it once per committed change, or once for the
// changes AddAll committed together; if it fails (or the process stops
// before it returns), the next Add with the same key, or Delete of the
// same id, calls it again, so a Recorder should treat a repeated (action,
// decision id) as done.
type Recorder interface {
	Record(ctx context.Context, rs ...*event.Response) error
}

// Errors of the decision store. A missing decision is ErrNotFound.
var (
	// ErrAllowListed means the value is on, or overlaps, the allow-list.
	ErrAllowListed = errors.New("respond: the address is on the decision allow-list, never banned")
	// ErrDecisionsFull means MaxActive decisions are active.
	ErrDecisionsFull = errors.New("respond: too many active decisions")
	// ErrEnded means the decision would have ended already: its Since
	// plus its duration is past.
	ErrEnded = errors.New("respond: the decision's time has passed")
)

// DecisionInputError reports an invalid field of a DecisionInput or
// DecisionQuery.
type DecisionInputError struct {
	Field  string
	Reason string
}

func (e *DecisionInputError) Error() string {
	return "invalid decision " + e.Field + ": " + e.Reason
}

// Decision scopes, as CrowdSec names them.
const (
	ScopeIP    = "Ip"
	ScopeRange = "Range"
)

// DecisionInput asks for a decision.
type DecisionInput struct {
	// Key makes Add idempotent: a key already used returns that decision
	// (for as long as it is active, and History after it ended).
	Key string
	// AlertIndex and DedupKey are the alert the decision is made for.
	AlertIndex uint64
	DedupKey   string
	// Scenario is the rule id, shown to bouncers.
	Scenario string
	// Type is "ban" (the default) or another bouncer remediation.
	Type string
	// Value is an IP address or a CIDR range.
	Value string
	// Duration is how long it lasts; 0 means DefaultDuration.
	Duration time.Duration
	// Since is when it counts from: the log's receipt of its alert, so
	// that an alert processed late (responders off, or catching up)
	// does not ban for its whole duration from then. Zero means now. A
	// decision that has already ended is not made (ErrEnded).
	Since time.Time
}

// DecisionInfo is a decision with what the store knows of it.
type DecisionInfo struct {
	event.Decision
	// UUID identifies the decision across systems (CrowdSec's uuid).
	UUID string
	// Key is its idempotency key, AlertIndex and DedupKey its alert.
	Key        string
	AlertIndex uint64
	DedupKey   string
	// Created is when it was made.
	Created time.Time
	// Ended is when it stopped applying: its Until when it expired, the
	// deletion time when it was deleted; zero while it is active.
	// DeletedBy names who deleted it.
	Ended     time.Time
	DeletedBy string
}

// Active reports whether d still applies.
func (d *DecisionInfo) Active() bool { return d.Ended.IsZero() }

// DecisionQuery selects decisions the way the CrowdSec Local API's
// parameters do. Empty fields select everything.
type DecisionQuery struct {
	// Scopes are scope names, case-insensitive for ip and range (CrowdSec
	// maps ip → Ip, range → Range). Nil selects all scopes.
	Scopes []string
	// Origins select exact origins; ScenariosContaining keeps decisions
	// whose scenario contains one of the words (case-insensitive), and
	// ScenariosNotContaining drops them.
	Origins                []string
	ScenariosContaining    []string
	ScenariosNotContaining []string
	// Value and Type select an exact value and type.
	Value string
	Type  string
	// Range, if valid, selects by address: the decisions whose address or
	// range contains all of Range, or with Within, those inside Range.
	Range  netip.Prefix
	Within bool
	// Limit bounds the decisions of List (0: all). Stream ignores it.
	Limit int
}

// StreamAnswer is what a bouncer pulls: the decisions it must apply
// (New) and those it must lift (Deleted), each in id order.
type StreamAnswer struct {
	New     []DecisionInfo
	Deleted []DecisionInfo
	// Now is the time the answer was computed: durations count from it.
	Now time.Time
	// Cursor is the change the answer goes up to; Ack it once the answer
	// was delivered.
	Cursor uint64
	// Full reports an answer with every active decision: asked for
	// (startup), or because the bouncer's cursor was unknown or older
	// than the kept history.
	Full bool
}

// DecisionList is the answer of List.
type DecisionList struct {
	Decisions []DecisionInfo
	Now       time.Time
}

// OpenDecisions loads the decision store kept in db under prefix (nothing
// there is an empty store). rec hears of each change; clock is nil for
// time.Now. The caller keeps db open while the store is used and closes
// it afterwards; the store holds no goroutine.
func OpenDecisions(ctx context.Context, db *badger.DB, prefix []byte, cfg DecisionsConfig, rec Recorder, clock func() time.Time) (*Decisions, error) {
	if db == nil || len(prefix) == 0 {
		return nil, errors.New("respond: OpenDecisions needs a database and a key prefix")
	}
	if clock == nil {
		clock = time.Now
	}
	s := &Decisions{db: db, pfx: slices.Clone(prefix), cfg: cfg.withDefaults(), rec: rec, clock: clock}
	for _, p := range s.cfg.Allow {
		if !p.IsValid() {
			return nil, errors.New("respond: an allow-list prefix is invalid")
		}
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	if err := s.applyAllowList(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Who ends the decisions that the allow-list covers, and why: the server
// itself ("accessledger", a name no API key may take).
const (
	decAllowListBy   = "accessledger"
	decAllowListNote = "the value is on the decision allow-list"
)

// applyAllowList deletes the active decisions whose value the allow-list
// covers (made before it did), as CrowdSec's
// ApplyAllowlistsToExistingDecisions does: bouncers get them in
// "deleted", and the Recorder hears of each as deleted by accessledger.
// Such deletions whose recording failed, or was cut short by a crash, are
// recorded again. With nothing to delete or record, it writes nothing.
func (s *Decisions) applyAllowList(ctx context.Context) error {
	s.mu.Lock()
	now := s.now()
	var covered []*decEntry
	for _, d := range s.expiry {
		// One past its time expires at the next call, as any other.
		if _, ok := s.allowListed(d.prefix); ok && d.Until.After(now) {
			covered = append(covered, d)
		}
	}
	slices.SortFunc(covered, func(a, b *decEntry) int { return decCmpID(a.ID, b.ID) })
	for len(covered) > 0 {
		n := min(len(covered), decMaxBatch)
		b := &decBatch{}
		for _, d := range covered[:n] {
			s.remove(d, now, now, decAllowListBy, b)
		}
		if err := s.commit(ctx, b); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("ending the decisions on allow-listed values: %w", err)
		}
		covered = covered[n:]
	}
	var unrecorded []*decEntry
	for _, d := range s.ended {
		if d.DeletedBy == decAllowListBy && d.recorded&decRecordedDel == 0 && d.recording&decRecordedDel == 0 {
			d.recording |= decRecordedDel
			unrecorded = append(unrecorded, d)
		}
	}
	s.mu.Unlock()
	for len(unrecorded) > 0 {
		n := min(len(unrecorded), decMaxBatch)
		if err := s.record(ctx, unrecorded[:n], decRecordedDel); err != nil {
			s.mu.Lock()
			for _, d := range unrecorded[n:] {
				d.recording &^= decRecordedDel
			}
			s.mu.Unlock()
			return fmt.Errorf("ending the decisions on allow-listed values: %w", err)
		}
		unrecorded = unrecorded[n:]
	}
	return nil
}

// allowListed returns the allow-list prefix that p overlaps, if any.
func (s *Decisions) allowListed(p netip.Prefix) (netip.Prefix, bool) {
	for _, a := range s.cfg.Allow {
		if a.Overlaps(p) {
			return a, true
		}
	}
	return netip.Prefix{}, false
}

// Add makes the decision in asks for, unless its key was used: then it
// returns that decision and created is false. The decision is committed
// before Add calls the Recorder and returns. Add refuses values on the
// allow-list (ErrAllowListed), invalid inputs (*DecisionInputError) and
// a decision beyond MaxActive (ErrDecisionsFull).
func (s *Decisions) Add(ctx context.Context, in DecisionInput) (event.Decision, bool, error) {
	res, err := s.AddAll(ctx, []DecisionInput{in})
	if len(res) == 0 {
		return event.Decision{}, false, err
	}
	if err == nil {
		err = res[0].Err
	}
	return res[0].Decision, res[0].Created, err
}

// AddResult is what AddAll did with one input.
type AddResult struct {
	Decision event.Decision // the decision made, or the one with the input's key
	Created  bool           // the decision was made by this call
	Err      error          // the input's refusal, as Add would return it
}

// AddAll makes the decisions ins ask for, as Add would one after the
// other, but commits them in one transaction and hands their changes to
// the Recorder in one call: under a stream of alerts, a decision costs a
// share of three synced writes instead of three of its own. An input
// refused (allow-listed, invalid, beyond MaxActive) has its error in its
// result and does not stop the others. A storage error returns no
// results if nothing was committed, and the results with the error if
// the decisions were committed but not recorded (a later Add with the
// same key records them).
func (s *Decisions) AddAll(ctx context.Context, ins []DecisionInput) ([]AddResult, error) {
	res := make([]AddResult, len(ins))
	type checked struct {
		scope, value string
		pfx          netip.Prefix
	}
	valid := make([]checked, len(ins))
	for i := range ins {
		c := &valid[i]
		c.scope, c.value, c.pfx, res[i].Err = s.checkInput(&ins[i])
	}
	s.mu.Lock()
	now, err := s.advance(ctx)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	var (
		b        decBatch
		made     int
		toRecord []*decEntry
	)
	for i := range ins {
		in, c := &ins[i], &valid[i]
		if res[i].Err != nil {
			continue
		}
		if d := s.byKey[in.Key]; d != nil {
			// Made before (or earlier in ins): record it again only if
			// its recording failed.
			if d.recorded&decRecordedAdd == 0 && d.recording&decRecordedAdd == 0 {
				d.recording |= decRecordedAdd
				toRecord = append(toRecord, d)
			}
			res[i].Decision = d.Decision
			continue
		}
		start := now
		if !in.Since.IsZero() && in.Since.Before(now) {
			start = in.Since
		}
		until := start.Add(in.Duration)
		if !until.After(now) {
			res[i].Err = fmt.Errorf("%w: %s from %s ended at %s", ErrEnded, in.Duration, start.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
			continue
		}
		if s.expiry.Len() >= s.cfg.MaxActive {
			res[i].Err = fmt.Errorf("%w: %d, the configured maximum", ErrDecisionsFull, s.cfg.MaxActive)
			continue
		}
		d := &decEntry{prefix: c.pfx, heapIdx: -1}
		d.DecisionInfo = DecisionInfo{
			Decision: event.Decision{ID: s.nextID, Origin: s.cfg.Origin, Type: in.Type, Scope: c.scope, Value: c.value,
				Scenario: in.Scenario, Until: until},
			UUID: decUUID(), Key: in.Key, AlertIndex: in.AlertIndex, DedupKey: in.DedupKey, Created: now,
		}
		d.setGroupKey()
		s.nextID++
		s.insert(d, now, &b)
		// Marked before the commit, so that a later input with the same
		// key does not record it twice; a failed commit reloads the
		// state, which drops d.
		d.recording |= decRecordedAdd
		toRecord = append(toRecord, d)
		res[i].Decision, res[i].Created = d.Decision, true
		made++
	}
	if made > 0 {
		b.meta = true
		if err := s.commit(ctx, &b); err != nil {
			for _, d := range toRecord {
				d.recording &^= decRecordedAdd
			}
			s.mu.Unlock()
			return nil, fmt.Errorf("adding decision: %w", err)
		}
	}
	s.mu.Unlock()
	return res, s.record(ctx, toRecord, decRecordedAdd)
}

// Delete ends the active decision id, as deleted by by (an admin key
// name), and returns it as it was. It answers ErrNotFound for a decision
// that does not exist or already ended.
func (s *Decisions) Delete(ctx context.Context, id uint64, by string) (event.Decision, error) {
	if by == "" || len(by) > event.MaxIDLen {
		return event.Decision{}, &DecisionInputError{Field: "by", Reason: fmt.Sprintf("must be 1 to %d bytes", event.MaxIDLen)}
	}
	s.mu.Lock()
	now, err := s.advance(ctx)
	if err != nil {
		s.mu.Unlock()
		return event.Decision{}, err
	}
	d := s.byID[id]
	switch {
	case d == nil:
		s.mu.Unlock()
		return event.Decision{}, fmt.Errorf("decision %d: %w", id, ErrNotFound)
	case !d.Active():
		// A deletion whose recording failed is retried by deleting again.
		retry := d.DeletedBy != "" && d.recorded&decRecordedDel == 0 && d.recording&decRecordedDel == 0
		if !retry {
			s.mu.Unlock()
			return event.Decision{}, fmt.Errorf("decision %d ended at %s: %w", id, d.Ended.UTC().Format(time.RFC3339), ErrNotFound)
		}
		d.recording |= decRecordedDel
		dec := d.Decision
		s.mu.Unlock()
		return dec, s.record(ctx, []*decEntry{d}, decRecordedDel)
	}
	b := &decBatch{}
	s.remove(d, now, now, by, b)
	if err := s.commit(ctx, b); err != nil {
		s.mu.Unlock()
		return event.Decision{}, fmt.Errorf("deleting decision %d: %w", id, err)
	}
	d.recording |= decRecordedDel
	dec := d.Decision
	s.mu.Unlock()
	return dec, s.record(ctx, []*decEntry{d}, decRecordedDel)
}

// Get returns decision id, active or ended within History (ErrNotFound
// otherwise).
func (s *Decisions) Get(ctx context.Context, id uint64) (DecisionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.advance(ctx); err != nil {
		return DecisionInfo{}, err
	}
	d := s.byID[id]
	if d == nil {
		return DecisionInfo{}, fmt.Errorf("decision %d: %w", id, ErrNotFound)
	}
	return d.DecisionInfo, nil
}

// List returns the active decisions that q selects, in id order, every
// one (no deduplication), as CrowdSec's GET /v1/decisions does.
func (s *Decisions) List(ctx context.Context, q DecisionQuery) (DecisionList, error) {
	m := compileDecisionQuery(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	now, err := s.advance(ctx)
	if err != nil {
		return DecisionList{}, err
	}
	var found []*decEntry
	add := func(d *decEntry) {
		if m.match(d) {
			found = append(found, d)
		}
	}
	switch {
	case m.rng.IsValid() && !m.within && m.rng.IsSingleIP():
		// The common lookup of one address: its own groups and the ranges.
		for _, t := range s.types {
			if g := s.groups[decGroupKey(t, ScopeIP, m.rng.Addr().String())]; g != nil {
				for _, d := range g.active {
					add(d)
				}
			}
		}
		for d := range s.ranges {
			add(d)
		}
	default:
		for _, d := range s.expiry {
			add(d)
		}
	}
	out := DecisionList{Now: now, Decisions: decInfos(found)}
	if q.Limit > 0 && len(out.Decisions) > q.Limit {
		out.Decisions = out.Decisions[:q.Limit]
	}
	return out, nil
}

// Stream answers a bouncer's pull (CrowdSec's GET /v1/decisions/stream).
// With startup, or when the bouncer has no cursor or one older than the
// kept history, New holds every active decision q selects, and Deleted
// the decisions that ended within History and were not replaced. Without,
// New holds the decisions that began to apply since the bouncer's cursor
// and still do, and Deleted those that stopped since. Of several active
// decisions on one value and type, bouncers see only the longest, as
// CrowdSec's deduplication does: when it ends and another remains, the
// other is sent as new.
//
// Stream does not move the cursor: call Ack with the answer's Cursor once
// the answer has been delivered, so that an answer lost on the way is
// sent again.
func (s *Decisions) Stream(ctx context.Context, bouncer Bouncer, startup bool, q DecisionQuery) (StreamAnswer, error) {
	if q.Scopes == nil {
		q.Scopes = []string{ScopeIP, ScopeRange} // CrowdSec's default for bouncers
	}
	m := compileDecisionQuery(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	now, err := s.advance(ctx)
	if err != nil {
		return StreamAnswer{}, err
	}
	last := s.nextSeq - 1
	ans := StreamAnswer{Now: now, Cursor: last}
	var news, dels []*decEntry
	var cursor uint64
	pos, known := s.positions[bouncer]
	if known {
		cursor = pos.cursor
	}
	if startup || !known || cursor < s.floor || cursor > last {
		ans.Full = true
		for _, g := range s.groups {
			switch {
			case g.effective != nil:
				if m.match(g.effective) {
					news = append(news, g.effective)
				}
			case g.gone != nil:
				if m.match(g.gone) {
					dels = append(dels, g.gone)
				}
			}
		}
	} else {
		// The latest change of each group since the cursor says where the
		// group stands now.
		since := s.changes[cursor-s.floor:]
		latest := make(map[string]int, len(since))
		for i := range since {
			latest[since[i].d.gkey] = i
		}
		for _, i := range latest {
			c := &since[i]
			switch {
			case !m.match(c.d):
			case c.deleted:
				dels = append(dels, c.d)
			default:
				news = append(news, c.d)
			}
		}
	}
	ans.New, ans.Deleted = decInfos(news), decInfos(dels)
	return ans, nil
}

// decInfos returns copies of ds in id order.
func decInfos(ds []*decEntry) []DecisionInfo {
	// Sorting the ids next to the pointers spares a cache miss per
	// comparison.
	type byID struct {
		id uint64
		d  *decEntry
	}
	keyed := make([]byID, len(ds))
	for i, d := range ds {
		keyed[i] = byID{d.ID, d}
	}
	slices.SortFunc(keyed, func(a, b byID) int { return decCmpID(a.id, b.id) })
	out := make([]DecisionInfo, len(ds))
	for i, k := range keyed {
		out[i] = k.d.DecisionInfo
	}
	return out
}

// DecisionsForAlert returns the decision inputs for the ban actions of an
// alert recorded at log index, received by the log at receivedAt: one per
// response action "ban" whose value is an IP address or a CIDR range,
// keyed "<index>/<value>", for the action's duration (defaultDuration if
// it gives none) from receivedAt. Other actions are not IP decisions and
// are left out.
func DecisionsForAlert(a *event.Alert, index uint64, receivedAt time.Time, defaultDuration time.Duration) []DecisionInput {
	var out []DecisionInput
	for _, r := range a.Response {
		if !strings.EqualFold(r.Action, "ban") || r.Value == "" {
			continue
		}
		if _, _, _, err := parseDecisionValue(r.Value); err != nil {
			continue
		}
		d := defaultDuration
		if r.DurationSeconds > 0 {
			const maxSeconds = int64(100 * 365 * 24 * 3600)
			d = time.Duration(min(r.DurationSeconds, maxSeconds)) * time.Second
		}
		out = append(out, DecisionInput{
			Key:        strconv.FormatUint(index, 10) + "/" + r.Value,
			AlertIndex: index,
			DedupKey:   a.DedupKey,
			Scenario:   a.Rule.ID,
			Type:       "ban",
			Value:      r.Value,
			Duration:   d,
			Since:      receivedAt,
		})
	}
	return out
}

// Recorded bits of a decision: which of its changes the Recorder took.
const (
	decRecordedAdd uint8 = 1 << iota
	decRecordedDel
)

// decEntry is a decision in memory.
type decEntry struct {
	DecisionInfo
	gkey      string
	prefix    netip.Prefix
	removed   time.Time // when the store ended it (pruning counts from it)
	recorded  uint8     // changes the Recorder took
	recording uint8     // changes being handed to the Recorder
	heapIdx   int
	// lastSeq is the latest change that names d: its record is pruned
	// only with or after that change, so that every committed state
	// opens (load refuses a change whose decision is not stored).
	lastSeq uint64
}

// decGroup is the decisions of one type, scope and value. Bouncers see
// one of them: the effective one, the active decision that lasts longest
// (the oldest of equals).
type decGroup struct {
	key       string
	active    []*decEntry
	effective *decEntry
	// gone is the effective decision whose end left the group without
	// active decisions; startup answers list it as deleted.
	gone *decEntry
	// one holds active while the group has one decision, as almost all
	// do: an object fewer per decision for every collection to mark
	// (BenchmarkDecisionsGC), in the group's size class (64 bytes).
	one [1]*decEntry
}

func decGroupKey(typ, scope, value string) string { return typ + "\x00" + scope + "\x00" + value }

// setGroupKey sets d's group key, and makes d's value the end of it: one
// string where there were two, for every collection to mark
// (BenchmarkDecisionsGC).
func (d *decEntry) setGroupKey() {
	d.gkey = decGroupKey(d.Type, d.Scope, d.Value)
	d.Value = d.gkey[len(d.gkey)-len(d.Value):]
}

// best returns the decision bouncers should see, nil if none is active.
func (g *decGroup) best() *decEntry {
	var b *decEntry
	for _, d := range g.active {
		if b == nil || d.Until.After(b.Until) || (d.Until.Equal(b.Until) && d.ID < b.ID) {
			b = d
		}
	}
	return b
}

// decChange is one entry of the change log: a decision that bouncers
// must now apply, or lift (deleted).
type decChange struct {
	seq     uint64
	at      time.Time
	deleted bool
	d       *decEntry
}

// decHeap orders active decisions by Until.
type decHeap []*decEntry

func (h decHeap) Len() int { return len(h) }
func (h decHeap) Less(i, j int) bool {
	return h[i].Until.Before(h[j].Until) || (h[i].Until.Equal(h[j].Until) && h[i].ID < h[j].ID)
}
func (h decHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *decHeap) Push(x any) {
	d := x.(*decEntry)
	d.heapIdx = len(*h)
	*h = append(*h, d)
}
func (h *decHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.heapIdx = -1
	return d
}

// decBatch is the writes of one change to the state, committed in one
// transaction.
type decBatch struct {
	records map[uint64]*decEntry // records to write
	changes []decChange
	deletes [][]byte
	meta    bool
}

func (b *decBatch) empty() bool {
	return len(b.records) == 0 && len(b.changes) == 0 && len(b.deletes) == 0 && !b.meta
}

func (b *decBatch) write(d *decEntry) {
	if b.records == nil {
		b.records = make(map[uint64]*decEntry)
	}
	b.records[d.ID] = d
}

// Keys, under the prefix: m → next id ‖ next seq; d<id> → decision
// record; e<seq> → change; c<key name>\x00<address> → a bouncer's
// position (bouncers.go).
func (s *Decisions) key(kind byte) []byte {
	return append(slices.Clip(s.pfx), kind)
}

func (s *Decisions) seqKey(kind byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(s.key(kind), n)
}

// decRecord is a decision as stored.
type decRecord struct {
	ID        uint64    `json:"id"`
	UUID      string    `json:"uuid"`
	Key       string    `json:"key"`
	Alert     uint64    `json:"alert"`
	DedupKey  string    `json:"dedup_key,omitempty"`
	Origin    string    `json:"origin"`
	Type      string    `json:"type"`
	Scope     string    `json:"scope"`
	Value     string    `json:"value"`
	Scenario  string    `json:"scenario"`
	Created   time.Time `json:"created"`
	Until     time.Time `json:"until"`
	Ended     time.Time `json:"ended,omitzero"`
	DeletedBy string    `json:"deleted_by,omitempty"`
	Removed   time.Time `json:"removed,omitzero"`
	Recorded  uint8     `json:"recorded,omitempty"`
}

func (d *decEntry) record() decRecord {
	return decRecord{ID: d.ID, UUID: d.UUID, Key: d.Key, Alert: d.AlertIndex, DedupKey: d.DedupKey,
		Origin: d.Origin, Type: d.Type, Scope: d.Scope, Value: d.Value, Scenario: d.Scenario,
		Created: d.Created, Until: d.Until, Ended: d.Ended, DeletedBy: d.DeletedBy, Removed: d.removed, Recorded: d.recorded}
}

// insert makes d active, logging a change if bouncers must see it.
func (s *Decisions) insert(d *decEntry, now time.Time, b *decBatch) {
	s.byID[d.ID] = d
	s.byKey[d.Key] = d
	heap.Push(&s.expiry, d)
	if d.Scope == ScopeRange {
		s.ranges[d] = struct{}{}
	}
	if !slices.Contains(s.types, d.Type) {
		s.types = append(s.types, d.Type)
	}
	g := s.group(d.gkey)
	g.active = append(g.active, d)
	b.write(d)
	if e := g.effective; e == nil || d.Until.After(e.Until) {
		g.effective = d
		s.change(d, false, now, b)
	}
}

// remove ends the active decision d at ended (by, if deleted), logging
// the change bouncers must see.
func (s *Decisions) remove(d *decEntry, ended, now time.Time, by string, b *decBatch) {
	heap.Remove(&s.expiry, d.heapIdx)
	delete(s.ranges, d)
	d.Ended, d.DeletedBy, d.removed = ended, by, now
	s.ended = append(s.ended, d)
	b.write(d)
	g := s.group(d.gkey)
	g.active = slices.DeleteFunc(g.active, func(x *decEntry) bool { return x == d })
	if g.effective != d {
		return
	}
	g.effective = g.best()
	if g.effective != nil {
		s.change(g.effective, false, now, b)
		return
	}
	g.gone = d
	s.change(d, true, now, b)
}

func (s *Decisions) group(key string) *decGroup {
	g := s.groups[key]
	if g == nil {
		g = &decGroup{key: key}
		g.active = g.one[:0]
		s.groups[key] = g
	}
	return g
}

func (s *Decisions) change(d *decEntry, deleted bool, now time.Time, b *decBatch) {
	c := decChange{seq: s.nextSeq, at: now, deleted: deleted, d: d}
	s.nextSeq++
	d.lastSeq = c.seq
	s.changes = append(s.changes, c)
	b.changes = append(b.changes, c)
	b.meta = true
}

// decMaxBatch bounds the decisions expired or pruned per transaction.
const decMaxBatch = 1000

// advance ends the decisions past their Until and prunes what is older
// than History, committing as it goes; it returns the store's time. It
// runs at the start of every call, under s.mu.
func (s *Decisions) advance(ctx context.Context) (time.Time, error) {
	if s.broken != nil {
		return time.Time{}, s.brokenErr()
	}
	now := s.now()
	cutoff := now.Add(-s.cfg.History)
	for {
		b := &decBatch{}
		for n := 0; n < decMaxBatch && s.expiry.Len() > 0 && !s.expiry[0].Until.After(now); n++ {
			d := s.expiry[0]
			s.remove(d, d.Until, now, "", b)
		}
		for n := 0; n < decMaxBatch && len(s.changes) > 0 && s.changes[0].at.Before(cutoff); n++ {
			c := s.changes[0]
			b.deletes = append(b.deletes, s.seqKey('e', c.seq))
			s.floor = c.seq
			s.changes[0] = decChange{}
			s.changes = s.changes[1:]
		}
		// A decision ended before cutoff has all its changes before cutoff
		// too, but they may not all be pruned yet (decMaxBatch): its
		// record waits for the batch that prunes its last one.
		for n := 0; n < decMaxBatch && len(s.ended) > 0 && s.ended[0].removed.Before(cutoff) && s.ended[0].lastSeq <= s.floor; n++ {
			d := s.ended[0]
			s.ended[0] = nil
			s.ended = s.ended[1:]
			delete(b.records, d.ID)
			b.deletes = append(b.deletes, s.seqKey('d', d.ID))
			delete(s.byID, d.ID)
			if s.byKey[d.Key] == d {
				delete(s.byKey, d.Key)
			}
			if g := s.groups[d.gkey]; g != nil && g.gone == d {
				g.gone = nil
				if len(g.active) == 0 {
					delete(s.groups, d.gkey)
				}
			}
		}
		if b.empty() {
			break
		}
		if err := s.commit(ctx, b); err != nil {
			return time.Time{}, fmt.Errorf("expiring decisions: %w", err)
		}
	}
	b := &decBatch{}
	s.sweepPositions(now, b)
	if !b.empty() {
		if err := s.commit(ctx, b); err != nil {
			return time.Time{}, fmt.Errorf("forgetting bouncer positions: %w", err)
		}
	}
	return now, nil
}

// now returns the clock's time, which may go back (see Decisions), and
// settles the state to it. Every call that changes the state takes its
// time from now.
func (s *Decisions) now() time.Time {
	now := s.clock().UTC()
	s.settle(now)
	return now
}

// settle brings the times ahead of now (the clock stepped back) to now:
// the changes' and the ended decisions' times, which pruning reads in
// order, and the last sweep of positions. The change log and s.ended are
// in order of time, each time at most the now of its call (load keeps
// that for what it reads); only a tail can be ahead.
func (s *Decisions) settle(now time.Time) {
	for i := len(s.changes) - 1; i >= 0 && s.changes[i].at.After(now); i-- {
		s.changes[i].at = now
	}
	for i := len(s.ended) - 1; i >= 0 && s.ended[i].removed.After(now); i-- {
		s.ended[i].removed = now
	}
	if s.swept.After(now) {
		s.swept = time.Time{}
	}
}

// commit writes b. If that fails, the state in memory (already changed)
// is reloaded from Badger, which still holds the state before b; if that
// fails too, the store is broken.
func (s *Decisions) commit(ctx context.Context, b *decBatch) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		if s.commitHook != nil {
			if err := s.commitHook(); err != nil {
				return err
			}
		}
		for _, d := range b.records {
			v, err := json.Marshal(d.record())
			if err != nil {
				return err
			}
			if err := txn.Set(s.seqKey('d', d.ID), v); err != nil {
				return err
			}
		}
		for _, c := range b.changes {
			v := make([]byte, 0, 17)
			kind := byte('n')
			if c.deleted {
				kind = 'x'
			}
			v = append(v, kind)
			v = binary.BigEndian.AppendUint64(v, c.d.ID)
			v = binary.BigEndian.AppendUint64(v, uint64(c.at.UnixNano()))
			if err := txn.Set(s.seqKey('e', c.seq), v); err != nil {
				return err
			}
		}
		for _, k := range b.deletes {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		if b.meta {
			v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, s.nextID), s.nextSeq)
			return txn.Set(s.key('m'), v)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	// Reloading must not stop halfway because the caller gave up.
	if lerr := s.load(context.WithoutCancel(ctx)); lerr != nil {
		s.broken = fmt.Errorf("%w; then reloading the decisions: %w", err, lerr)
	}
	return err
}

func (s *Decisions) brokenErr() error {
	return fmt.Errorf("respond: the decision store stopped after a storage failure; restart the server: %w", s.broken)
}

// load replaces the state in memory with the one in Badger.
func (s *Decisions) load(ctx context.Context) error {
	s.nextID, s.nextSeq, s.floor = 1, 1, 0
	s.changes = nil
	s.byID = make(map[uint64]*decEntry)
	s.byKey = make(map[string]*decEntry)
	s.groups = make(map[string]*decGroup)
	s.types = nil
	s.ranges = make(map[*decEntry]struct{})
	s.expiry = nil
	s.ended = nil
	s.positions = make(map[Bouncer]*decPosition)
	s.perKey = make(map[string]int)
	s.legacy = nil
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(s.key('m'))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != 16 {
				return fmt.Errorf("decision store counters: %d bytes, want 16", len(v))
			}
			s.nextID, s.nextSeq = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		}
		if err := s.scan(ctx, txn, 'd', s.loadRecord); err != nil {
			return err
		}
		if err := s.scan(ctx, txn, 'e', s.loadChange); err != nil {
			return err
		}
		return s.scan(ctx, txn, 'c', s.loadPosition)
	})
	if err != nil {
		return fmt.Errorf("loading decisions: %w", err)
	}
	heap.Init(&s.expiry)
	for _, g := range s.groups {
		g.effective = g.best()
	}
	slices.SortStableFunc(s.ended, func(a, b *decEntry) int { return a.removed.Compare(b.removed) })
	// Changes stored after the clock stepped back may follow later times:
	// each counts from the earliest time at or after it (pruned no later
	// than the changes after it, which settle needs).
	for i := len(s.changes) - 2; i >= 0; i-- {
		if next := s.changes[i+1].at; s.changes[i].at.After(next) {
			s.changes[i].at = next
		}
	}
	if len(s.changes) > 0 {
		s.floor = s.changes[0].seq - 1
		for i, c := range s.changes {
			if c.seq != s.floor+1+uint64(i) {
				return fmt.Errorf("loading decisions: change %d follows change %d", c.seq, s.floor+uint64(i))
			}
		}
	} else {
		s.floor = s.nextSeq - 1
	}
	return nil
}

// scan calls f with the key (after the prefix and kind) and value of
// every record of one kind.
func (s *Decisions) scan(ctx context.Context, txn *badger.Txn, kind byte, f func(k, v []byte) error) error {
	pfx := s.key(kind)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := it.Item().Value(func(v []byte) error { return f(it.Item().Key()[len(pfx):], v) })
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Decisions) loadRecord(_, v []byte) error {
	var r decRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return fmt.Errorf("decision record: %w", err)
	}
	_, _, pfx, err := parseDecisionValue(r.Value)
	if err != nil {
		return fmt.Errorf("decision %d: %w", r.ID, err)
	}
	d := &decEntry{prefix: pfx, removed: r.Removed, recorded: r.Recorded, heapIdx: -1}
	d.DecisionInfo = DecisionInfo{
		Decision: event.Decision{ID: r.ID, Origin: r.Origin, Type: r.Type, Scope: r.Scope, Value: r.Value,
			Scenario: r.Scenario, Until: r.Until},
		UUID: r.UUID, Key: r.Key, AlertIndex: r.Alert, DedupKey: r.DedupKey, Created: r.Created,
		Ended: r.Ended, DeletedBy: r.DeletedBy,
	}
	d.setGroupKey()
	s.byID[d.ID] = d
	s.byKey[d.Key] = d
	if !d.Active() {
		s.ended = append(s.ended, d)
		return nil
	}
	d.heapIdx = len(s.expiry)
	s.expiry = append(s.expiry, d)
	if d.Scope == ScopeRange {
		s.ranges[d] = struct{}{}
	}
	if !slices.Contains(s.types, d.Type) {
		s.types = append(s.types, d.Type)
	}
	g := s.group(d.gkey)
	g.active = append(g.active, d)
	return nil
}

func (s *Decisions) loadChange(k, v []byte) error {
	if len(k) != 8 || len(v) != 17 {
		return fmt.Errorf("change record %x: malformed", k)
	}
	seq, id := binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(v[1:])
	d := s.byID[id]
	if d == nil {
		return fmt.Errorf("change %d names decision %d, which is not stored", seq, id)
	}
	c := decChange{seq: seq, at: time.Unix(0, int64(binary.BigEndian.Uint64(v[9:]))).UTC(), deleted: v[0] == 'x', d: d}
	d.lastSeq = max(d.lastSeq, seq)
	s.changes = append(s.changes, c)
	if c.deleted {
		s.group(d.gkey).gone = d
	}
	return nil
}

// record hands the change bit of each of ds to the Recorder, in one
// call, and notes that it was taken. Each d.recording has bit set by the
// caller.
func (s *Decisions) record(ctx context.Context, ds []*decEntry, bit uint8) error {
	if len(ds) == 0 {
		return nil
	}
	rs := make([]*event.Response, len(ds))
	s.mu.Lock()
	for i, d := range ds {
		r := &event.Response{Action: event.ActionDecisionAdded, Time: d.Created, By: "accessledger", DedupKey: d.DedupKey}
		if bit == decRecordedDel {
			r.Action, r.Time, r.By = event.ActionDecisionDeleted, d.Ended, d.DeletedBy
			if d.DeletedBy == decAllowListBy {
				r.Note = decAllowListNote
			}
		}
		alert, dec := d.AlertIndex, d.Decision
		r.Alert, r.Decision = &alert, &dec
		rs[i] = r
	}
	s.mu.Unlock()
	var err error
	if s.rec != nil {
		err = s.rec.Record(ctx, rs...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		d.recording &^= bit
	}
	if err != nil {
		if len(ds) == 1 {
			return fmt.Errorf("recording %s of decision %d: %w", rs[0].Action, ds[0].ID, err)
		}
		return fmt.Errorf("recording %s of %d decisions (ids %d to %d): %w", rs[0].Action, len(ds), ds[0].ID, ds[len(ds)-1].ID, err)
	}
	for _, d := range ds {
		d.recorded |= bit
	}
	if s.broken != nil {
		return nil
	}
	// Failing to note it only means recording again after a retry.
	_ = s.db.Update(func(txn *badger.Txn) error {
		for _, d := range ds {
			if s.byID[d.ID] != d {
				continue // pruned meanwhile
			}
			v, err := json.Marshal(d.record())
			if err != nil {
				return err
			}
			if err := txn.Set(s.seqKey('d', d.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	return nil
}

// checkInput validates in, fills its defaults and returns the scope,
// canonical value and prefix of its value.
func (s *Decisions) checkInput(in *DecisionInput) (scope, value string, pfx netip.Prefix, err error) {
	bad := func(field, reason string) error { return &DecisionInputError{Field: field, Reason: reason} }
	if in.Type == "" {
		in.Type = "ban"
	}
	if in.Duration <= 0 {
		in.Duration = s.cfg.DefaultDuration
	}
	switch {
	case in.Key == "" || len(in.Key) > 512:
		return "", "", pfx, bad("key", "must be 1 to 512 bytes")
	case in.Scenario == "" || len(in.Scenario) > event.MaxIDLen:
		return "", "", pfx, bad("scenario", fmt.Sprintf("must be 1 to %d bytes", event.MaxIDLen))
	case len(in.DedupKey) > 512:
		return "", "", pfx, bad("dedup_key", "longer than 512 bytes")
	case !decValidType(in.Type):
		return "", "", pfx, bad("type", "must be 1 to 32 lower-case letters, digits, - or _ (ban, captcha)")
	}
	scope, value, pfx, err = parseDecisionValue(in.Value)
	if err != nil {
		return "", "", pfx, err
	}
	if a, ok := s.allowListed(pfx); ok {
		return "", "", pfx, fmt.Errorf("%w: %s overlaps %s", ErrAllowListed, value, a)
	}
	return scope, value, pfx, nil
}

func decValidType(t string) bool {
	if len(t) == 0 || len(t) > 32 {
		return false
	}
	for _, c := range []byte(t) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseDecisionValue parses an IP address or CIDR range. IPv4-mapped IPv6
// values become IPv4; a range is masked; a /32 or /128 range is an
// address (scope Ip).
func parseDecisionValue(v string) (scope, value string, pfx netip.Prefix, err error) {
	bad := &DecisionInputError{Field: "value", Reason: fmt.Sprintf("%.64q is not an IP address or a CIDR range", v)}
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return "", "", pfx, bad
		}
		addr, bits := p.Addr(), p.Bits()
		if addr.Is4In6() && bits >= 96 {
			addr, bits = addr.Unmap(), bits-96
		}
		pfx = netip.PrefixFrom(addr, bits).Masked()
	} else {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return "", "", pfx, bad
		}
		a = a.Unmap()
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if pfx.IsSingleIP() {
		return ScopeIP, pfx.Addr().String(), pfx, nil
	}
	return ScopeRange, pfx.String(), pfx, nil
}

// decMatcher is a compiled DecisionQuery.
type decMatcher struct {
	scopes, origins, containing, notContaining []string
	value, typ                                 string
	rng                                        netip.Prefix
	within                                     bool
}

func compileDecisionQuery(q DecisionQuery) *decMatcher {
	m := &decMatcher{origins: q.Origins, value: q.Value, typ: q.Type, within: q.Within}
	if q.Scopes != nil {
		m.scopes = make([]string, len(q.Scopes))
		for i, sc := range q.Scopes {
			m.scopes[i] = decScope(sc)
		}
	}
	for _, w := range q.ScenariosContaining {
		m.containing = append(m.containing, strings.ToLower(w))
	}
	for _, w := range q.ScenariosNotContaining {
		m.notContaining = append(m.notContaining, strings.ToLower(w))
	}
	if q.Range.IsValid() {
		p := q.Range
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		m.rng = p.Masked()
	}
	return m
}

// decScope maps the scope names CrowdSec accepts in any case.
func decScope(s string) string {
	switch strings.ToLower(s) {
	case "ip":
		return ScopeIP
	case "range":
		return ScopeRange
	case "country":
		return "Country"
	case "as":
		return "AS"
	}
	return s
}

func (m *decMatcher) match(d *decEntry) bool {
	switch {
	case m.scopes != nil && !slices.Contains(m.scopes, d.Scope):
		return false
	case m.origins != nil && !slices.Contains(m.origins, d.Origin):
		return false
	case m.value != "" && d.Value != m.value:
		return false
	case m.typ != "" && d.Type != m.typ:
		return false
	}
	if m.containing != nil || m.notContaining != nil {
		sc := strings.ToLower(d.Scenario)
		has := func(words []string) bool {
			return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(sc, w) })
		}
		if m.containing != nil && !has(m.containing) || has(m.notContaining) {
			return false
		}
	}
	if m.rng.IsValid() {
		p := d.prefix
		if p.Addr().BitLen() != m.rng.Addr().BitLen() {
			return false
		}
		if m.within {
			return m.rng.Bits() <= p.Bits() && m.rng.Contains(p.Addr())
		}
		return p.Bits() <= m.rng.Bits() && p.Contains(m.rng.Addr())
	}
	return true
}

func decCmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decUUID returns a random (version 4) UUID.
func decUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[c>>4], hexd[c&0xf])
	}
	return string(out)
}
