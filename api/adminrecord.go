package api

// What the log was last told of each API key, kept beside the keys file,
// so that a change the admin leaves of creation, rotation and revocation
// do not record (an edit of the keys file by hand: new roles, a new
// secret, a later expiry) is recorded as a key_changed leaf, even when it
// was made while the server was stopped.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
)

// keyRecord is what the log was last told of one key: enough to tell
// which of its fields changed since, never its secret nor the secret's
// hash (only a hash of the hashes, to tell that they changed).
type keyRecord struct {
	Source string `json:"source"` // file or config
	Name   string `json:"name"`
	// Identity is the hex SHA-256 of keyIdentity: a key made anew under
	// the same name is another key.
	Identity  string     `json:"identity"`
	Roles     []Role     `json:"roles"` // sorted, each once
	ExpiresAt time.Time  `json:"expires_at,omitzero"`
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// Secret is the hex SHA-256 of the hashes of the secrets the key
	// accepts (its own, and the one a rotation replaced, with the end of
	// its grace period).
	Secret    string    `json:"secret"`
	RotatedAt time.Time `json:"rotated_at,omitzero"`
	Revoked   bool      `json:"revoked,omitempty"`
	// Removed is set once the key is no longer loaded: its name stays
	// taken (KeyFile.Create).
	Removed bool `json:"removed,omitempty"`
	// Changes counts the key_changed leaves recorded for the key; the
	// next one's dedup key holds it, so that a change undone and made
	// again is recorded again.
	Changes int `json:"changes,omitempty"`
}

// keyRecords is the content of the records file (KeyFile.recordsPath).
type keyRecords struct {
	Keys []keyRecord `json:"keys"`
}

// recordsPath is the file in which the server keeps what the log was last
// told of each key: beside the keys file, so that accessledger apikey
// finds the names it must not reuse.
func (f *KeyFile) recordsPath() string { return f.path + ".recorded" }

// readKeyRecords reads the records file at path; nil (and no error) if
// there is none. The server alone writes it, a plain file: a symbolic
// link, a FIFO, a device or a file larger than MaxKeyFileSize is refused
// (root reads it too, for accessledger apikey add, in a directory the
// server's user may write), and an error never shows what it holds.
func readKeyRecords(path string) (*keyRecords, error) {
	raw, _, err := readPlain(path, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if isLinkRefused(err) {
		return nil, fmt.Errorf("%s is a symbolic link: the server writes it as a plain file; remove it", path)
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r keyRecords
	if err := dec.Decode(&r); err != nil {
		// Neither a syntax error nor an unknown field is quoted.
		return nil, fmt.Errorf("parsing %s: not the records the server writes (at byte %d)", path, dec.InputOffset())
	}
	return &r, nil
}

// save writes r to path, atomically, mode 0600.
func (r *keyRecords) save(path string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return ledger.WriteFileAtomic(path, append(raw, '\n'), 0o600)
}

// find returns the record of the key of source named name, or nil.
func (r *keyRecords) find(source, name string) *keyRecord {
	if r == nil {
		return nil
	}
	for i := range r.Keys {
		if r.Keys[i].Source == source && r.Keys[i].Name == name {
			return &r.Keys[i]
		}
	}
	return nil
}

// newKeyRecord returns what recording k, of source, tells the log.
func newKeyRecord(k *APIKey, source string) keyRecord {
	roles := slices.Clone(k.Roles)
	slices.Sort(roles)
	id := sha256.Sum256([]byte(keyIdentity(k, source)))
	secret := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s", lowerHex(k.SHA256), lowerHex(k.PreviousSHA256),
		k.PreviousValidUntil.UTC().Format(time.RFC3339Nano)))
	rec := keyRecord{
		Source: source, Name: k.Name, Identity: hex.EncodeToString(id[:]),
		Roles: slices.Compact(roles), ExpiresAt: k.ExpiresAt.UTC(), Secret: hex.EncodeToString(secret[:]),
		RotatedAt: k.RotatedAt.UTC(), Revoked: k.Revoked(),
	}
	if k.RateLimit != nil {
		rl := *k.RateLimit
		rec.RateLimit = &rl
	}
	return rec
}

func lowerHex(s string) string {
	b, err := hex.DecodeString(s)
	if err != nil {
		return s
	}
	return hex.EncodeToString(b)
}

// digest identifies the state rec records: the dedup key of a change
// holds it.
func (rec *keyRecord) digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q\x00%s\x00%s\x00%t\x00", rec.Roles, rec.ExpiresAt.Format(time.RFC3339Nano), rec.Secret, rec.Revoked)
	if rec.RateLimit != nil {
		fmt.Fprintf(h, "%v/%d", rec.RateLimit.PerSecond, rec.RateLimit.Burst)
	}
	return string(h.Sum(nil))
}

// changed lists what changed from was to now that no other admin action
// records: roles, the rate limit, and, unless rotated (the key's
// rotation moved on to one the log did not hold: its key_rotated leaf
// records the new secret and expiry), the expiry and the secret; and a
// revocation undone. A rotated_at cleared, or set back to an earlier
// rotation, records nothing: the secret and expiry are then a change.
func changed(was, now *keyRecord, rotated bool) []string {
	var out []string
	rotated = rotated && now.RotatedAt.After(was.RotatedAt)
	if !slices.Equal(was.Roles, now.Roles) {
		out = append(out, event.AdminChangedRoles)
	}
	if !rotated && !was.ExpiresAt.Equal(now.ExpiresAt) {
		out = append(out, event.AdminChangedExpiry)
	}
	if (was.RateLimit == nil) != (now.RateLimit == nil) || was.RateLimit != nil && *was.RateLimit != *now.RateLimit {
		out = append(out, event.AdminChangedRateLimit)
	}
	if !rotated && was.Secret != now.Secret {
		out = append(out, event.AdminChangedSecret)
	}
	if (was.Revoked || was.Removed) && !now.Revoked {
		out = append(out, event.AdminChangedRevocation)
	}
	return out
}

// keyChanges compares the keys loaded (those of the configuration and of
// the keys file) with what the log was last told of them (was; nil: no
// record, the keys as they are count as told) and returns the key_changed
// actions of what changed, made at now, and the records once they are
// recorded. A key whose record has another identity (or none) is new: its
// creation records it. Records of keys no longer loaded are kept, marked
// removed. rotated reports whether the log was told of a key's rotation
// (its rotated_at) only now: that rotation's leaf records its secret and
// expiry.
func keyChanges(was *keyRecords, configKeys, fileKeys []APIKey, now time.Time, rotated func(k *APIKey, source string) bool) ([]adminAction, *keyRecords) {
	next := &keyRecords{Keys: make([]keyRecord, 0, len(configKeys)+len(fileKeys))}
	var acts []adminAction
	add := func(keys []APIKey, source, by string) {
		for i := range keys {
			k := &keys[i]
			rec := newKeyRecord(k, source)
			old := was.find(source, k.Name)
			if old == nil || old.Identity != rec.Identity {
				next.Keys = append(next.Keys, rec)
				continue
			}
			rec.Changes = old.Changes
			if what := changed(old, &rec, !k.RotatedAt.IsZero() && rotated(k, source)); len(what) > 0 {
				rec.Changes++
				a := event.Admin{Action: event.AdminKeyChanged, Time: now, By: by, Key: k.Name,
					Roles: roleNames(k.Roles), ExpiresAt: k.ExpiresAt, Changed: what}
				if k.RateLimit != nil {
					a.RateLimit = &event.AdminRateLimit{PerSecond: k.RateLimit.PerSecond, Burst: k.RateLimit.Burst}
				}
				acts = append(acts, adminAction{leaf: a,
					dedup: adminDedup(event.AdminKeyChanged, keyIdentity(k, source), strconv.Itoa(rec.Changes), rec.digest())})
			}
			next.Keys = append(next.Keys, rec)
		}
	}
	add(configKeys, sourceConfig, event.AdminByConfig)
	add(fileKeys, sourceFile, event.AdminByCLI)
	if was != nil {
		for _, old := range was.Keys {
			if next.find(old.Source, old.Name) == nil {
				old.Removed = true
				next.Keys = append(next.Keys, old)
			}
		}
	}
	return acts, next
}

// checkNameUnrecorded refuses name if the log records a key of that name
// that is no longer in the keys file (removed by hand, as the server's
// records file says). Call it under the file's lock, for a name the file
// does not hold.
func (f *KeyFile) checkNameUnrecorded(name string) error {
	recs, err := readKeyRecords(f.recordsPath())
	if err != nil {
		return fmt.Errorf("checking that the name %q was never used: %w", name, err)
	}
	if recs == nil {
		return nil
	}
	for _, rec := range recs.Keys {
		if rec.Name == name {
			from := "the keys file"
			if rec.Source == sourceConfig {
				from = "the server's configuration (api_keys)"
			}
			return refuse(ErrKeyConflict, "an API key named %q existed (the log records it) and was removed from %s; names are not reused, so that the log's records of a key stay unambiguous: choose another name", name, from)
		}
	}
	return nil
}

// readRecords returns the records file's records; nil if there is none,
// or if it cannot be read (reported: it is written by the server alone,
// so that is an edit gone wrong).
func (s *Server) readRecords() *keyRecords {
	path := s.cfg.KeyFile.recordsPath()
	recs, err := readKeyRecords(path)
	if err != nil {
		s.log.Error("what the log was told of the API keys cannot be read: the keys as they are now count as recorded, and changes made to them while the server was stopped, if any, are not recorded",
			"path", path, "err", err)
		return nil
	}
	return recs
}

// keepRecordsLocked makes records, those of the actions acts recorded
// with results, what the log was last told of the keys, and saves them if
// they changed. A failure to save is reported: the log holds the actions,
// the next start compares with older records, and the dedup keys keep it
// from recording a change twice. s.admin.mu must be held.
func (s *Server) keepRecordsLocked(records *keyRecords, acts []adminAction, results map[string]ledger.Result) {
	path := s.cfg.KeyFile.recordsPath()
	if s.admin.records == nil && recordedBefore(acts, results) {
		s.log.Warn("there is no record of what the log was told of each API key: the keys as they are now count as recorded, and changes made to them while the server was stopped, if any, are not recorded (expected at the first start of a version that keeps one)",
			"path", path)
	}
	if s.admin.records != nil && reflect.DeepEqual(records, s.admin.records) {
		return
	}
	s.admin.records = records
	if err := records.save(path); err != nil {
		s.log.Error("saving what the log was told of the API keys failed", "path", path, "err", err)
	}
}

// recordedBefore reports whether one of the creations in acts was in the
// log before results recorded it.
func recordedBefore(acts []adminAction, results map[string]ledger.Result) bool {
	for _, a := range acts {
		if r, ok := results[string(a.dedup)]; ok && r.Duplicate && a.leaf.Action == event.AdminKeyCreated {
			return true
		}
	}
	return false
}

// Bounds of removedInLog: the admin leaves it reads through the index,
// and the leaves it reads one by one past what the index has reached.
const (
	maxSeedLeaves   = 100_000
	maxUnindexedRun = 10_000
)

// removedInLog returns records, marked removed, of the keys the log's
// admin leaves name that are not loaded now (loaded), so that a start
// without a records file (the first of a version that keeps one) still
// refuses the names of keys deleted before. It reads only what the
// query index finds (kind admin) and at most maxUnindexedRun leaves the
// index has not reached yet; without an index, none (the server log
// says so).
func (s *Server) removedInLog(ctx context.Context, loaded func(name string) bool) []keyRecord {
	path := s.cfg.KeyFile.recordsPath()
	if s.cfg.Index == nil {
		s.log.Warn("there is no record of what the log was told of each API key, and no query index to find the keys it recorded: the names of keys deleted from the keys file before are not refused",
			"path", path)
		return nil
	}
	names := map[string]bool{}
	add := func(i uint64) error {
		data, _, err := s.cfg.Ledger.Entry(ctx, i)
		if err != nil {
			return err
		}
		if event.LeafKind(data) != event.KindAdmin {
			return nil
		}
		if _, a, err := event.DecodeAdminLeaf(data); err == nil && !loaded(a.Key) {
			names[a.Key] = true
		}
		return nil
	}
	var failed error
	n := 0
	indexed, err := s.cfg.Index.Search(ctx, index.Query{Kind: []string{string(event.KindAdmin)}}, 0, s.cfg.Index.Size(), false, func(i uint64) bool {
		n++
		failed = add(i)
		return failed == nil && n < maxSeedLeaves
	})
	err = cmp.Or(err, failed)
	if size, _ := s.cfg.Ledger.Size(); err == nil && n < maxSeedLeaves && size-indexed <= maxUnindexedRun {
		for i := indexed; i < size && err == nil; i++ {
			err = add(i)
		}
	} else if err == nil {
		err = fmt.Errorf("more than %d admin leaves, or the index %d leaves behind the log", maxSeedLeaves, size-indexed)
	}
	if err != nil {
		s.log.Warn("there is no record of what the log was told of each API key, and finding the keys it recorded failed: the names of keys deleted from the keys file before may not be refused",
			"path", path, "err", err)
	}
	out := make([]keyRecord, 0, len(names))
	for _, name := range slices.Sorted(maps.Keys(names)) {
		out = append(out, keyRecord{Source: sourceFile, Name: name, Removed: true})
	}
	return out
}

// checkConfigNames refuses config keys named as a key the records say
// was removed from the keys file: the log's records of that name would
// speak of two keys.
func checkConfigNames(configKeys []APIKey, from string, recs *keyRecords) error {
	for i := range configKeys {
		if rec := recs.find(sourceFile, configKeys[i].Name); rec != nil && rec.Removed {
			return fmt.Errorf("%s has an API key named %q, the name of a key removed from the keys file that the log records; names are not reused, so that the log's records of a key stay unambiguous: rename it",
				from, configKeys[i].Name)
		}
	}
	return nil
}
