package api

// Key administration: the admin endpoints, the changes they make to the
// keys file (shared with the accessledger apikey command), the watch on
// that file, and the admin leaves that record every change in the log.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// Limits of key administration.
const (
	// MaxRotationGrace bounds how long a rotated key's old secret may
	// stay valid.
	MaxRotationGrace = 30 * 24 * time.Hour
	// DefaultKeyPollInterval is how often Run checks the keys file for
	// changes.
	DefaultKeyPollInterval = time.Second
	// maxAdminBody bounds the body of an admin request.
	maxAdminBody = 64 << 10
)

// Errors of key administration. The admin endpoints answer them 404, 409
// and 400; their text is a sentence for the caller.
var (
	ErrNoSuchKey     = errors.New("no such API key")
	ErrKeyConflict   = errors.New("the API keys do not allow this change")
	ErrBadKeyRequest = errors.New("invalid API key request")
)

// keyError is a refused change: kind is one of the errors above, msg says
// what is wrong and what to do.
type keyError struct {
	kind error
	msg  string
}

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return e.kind }

func refuse(kind error, format string, args ...any) error {
	return &keyError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// KeySpec describes a new API key.
type KeySpec struct {
	Name  string
	Roles []Role
	// ExpiresAt is when the key stops being valid; zero for never.
	ExpiresAt time.Time
	// RateLimit, if set, replaces the server's default for this key.
	RateLimit *RateLimit
}

// RotateSpec says how to rotate a key.
type RotateSpec struct {
	// Grace is how long the old secret stays valid (0: it stops at
	// once; at most MaxRotationGrace).
	Grace time.Duration
	// ExpiresAt, if set, is the key's new expiry; zero keeps the old
	// one.
	ExpiresAt time.Time
}

// ParseExpiry parses when a key expires: an RFC 3339 time, or a duration
// from now such as 720h or 90d; "" and "never" mean never (zero).
func ParseExpiry(s string, now time.Time) (time.Time, error) {
	switch s {
	case "", "never":
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expiry %q: want an RFC 3339 time such as 2027-01-01T00:00:00Z, or a duration such as 720h or 90d", s)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("expiry %q: the duration must be positive", s)
	}
	return now.Add(d).UTC(), nil
}

// ParseDuration parses a Go duration (90m, 720h) or a number of days
// (90d).
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("duration %q: at most 65535 days", s)
		}
		if err != nil {
			return 0, fmt.Errorf("duration %q: want a whole number of days, such as 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// checkKeyNameFree reports why name cannot be a key's: not a key name
// (CheckKeyName), or, in any case, one the log's admin leaves use for who
// acted outside the admin API.
func checkKeyNameFree(name string) error {
	if err := CheckKeyName(name); err != nil {
		return err
	}
	for _, r := range []string{event.AdminByCLI, event.AdminByConfig, event.AdminByServer} {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("key name %q is reserved: the log's admin leaves use it for changes made outside the admin API; choose another name", name)
		}
	}
	return nil
}

// check reports why spec cannot make a key at now.
func (spec KeySpec) check(now time.Time) error {
	if err := checkKeyNameFree(spec.Name); err != nil {
		return refuse(ErrBadKeyRequest, "%v", err)
	}
	if len(spec.Roles) == 0 {
		return refuse(ErrBadKeyRequest, "give the key at least one role: submitter, auditor, responder, bouncer or admin")
	}
	for _, r := range spec.Roles {
		if _, err := ParseRole(string(r)); err != nil {
			return refuse(ErrBadKeyRequest, "%v", err)
		}
	}
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
		return refuse(ErrBadKeyRequest, "the expiry %s is not in the future", spec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if spec.RateLimit != nil {
		if err := spec.RateLimit.Check(); err != nil {
			return refuse(ErrBadKeyRequest, "%v", err)
		}
	}
	return nil
}

// findKey returns the index of the key named name in keys, or -1.
func findKey(keys []APIKey, name string) int {
	return slices.IndexFunc(keys, func(k APIKey) bool { return k.Name == name })
}

// configured refuses a change to a key of the server's configuration:
// only the keys file can be changed.
func configured(others []APIKey, name string) error {
	if findKey(others, name) >= 0 {
		return refuse(ErrKeyConflict, "API key %q is defined in the server's configuration (api_keys), not in the keys file: change it there and restart the server", name)
	}
	return nil
}

// Create adds a key made from spec to the file, recording that by created
// it at now, and returns its secret (shown only this once) and the key as
// stored. others are the keys of the server's configuration, whose names
// are taken too. Names are never reused, not even a revoked key's, nor
// that of a key removed from the file by hand that the log recorded (the
// server's records file, beside the keys file, keeps them), so that the
// log's records of a key stay unambiguous.
func (f *KeyFile) Create(spec KeySpec, by string, now time.Time, others []APIKey) (string, APIKey, error) {
	if err := spec.check(now); err != nil {
		return "", APIKey{}, err
	}
	roles := slices.Clone(spec.Roles)
	slices.Sort(roles) // so that Compact drops every repeat, not only adjacent ones
	token, key, err := NewAPIKey(spec.Name, slices.Compact(roles)...)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("making a secret: %w", err)
	}
	key.CreatedAt, key.CreatedBy = now.UTC(), by
	if !spec.ExpiresAt.IsZero() {
		key.ExpiresAt = spec.ExpiresAt.UTC()
	}
	key.RateLimit = spec.RateLimit
	_, err = f.Update(func(keys []APIKey) ([]APIKey, error) {
		if findKey(others, spec.Name) >= 0 {
			return nil, refuse(ErrKeyConflict, "an API key named %q is defined in the server's configuration (api_keys); choose another name", spec.Name)
		}
		if i := findKey(keys, spec.Name); i >= 0 {
			if keys[i].Revoked() {
				return nil, refuse(ErrKeyConflict, "an API key named %q existed and was revoked; names are not reused, so that the log's records of a key stay unambiguous: choose another name", spec.Name)
			}
			return nil, refuse(ErrKeyConflict, "an API key named %q already exists; choose another name, or rotate that key", spec.Name)
		}
		if err := f.checkNameUnrecorded(spec.Name); err != nil {
			return nil, err
		}
		return append(keys, key), nil
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return token, key, nil
}

// Revoke revokes the key named name, recording that by did it at now, and
// returns it. The key stays in the file, refused. It refuses to revoke
// the last active admin key (of the file and others, the keys of the
// server's configuration), which would leave nobody to administer keys;
// Rotate likewise refuses to give that key an earlier expiry.
func (f *KeyFile) Revoke(name, by string, now time.Time, others []APIKey) (APIKey, error) {
	if err := configured(others, name); err != nil {
		return APIKey{}, err
	}
	var out APIKey
	_, err := f.Update(func(keys []APIKey) ([]APIKey, error) {
		i := findKey(keys, name)
		if i < 0 {
			return nil, refuse(ErrNoSuchKey, "no API key named %q in the keys file", truncate(name, 64))
		}
		k := &keys[i]
		if k.Revoked() {
			return nil, refuse(ErrKeyConflict, "API key %q was already revoked at %s", name, k.RevokedAt.UTC().Format(time.RFC3339))
		}
		if slices.Contains(k.Roles, RoleAdmin) && k.Active(now) && activeAdmins(keys, now)+activeAdmins(others, now) <= 1 {
			return nil, refuse(ErrKeyConflict, "API key %q is the last active admin key; add another admin key first, so that keys can still be administered", name)
		}
		k.RevokedAt, k.RevokedBy = now.UTC(), by
		out = *k
		return keys, nil
	})
	return out, err
}

// MaxReplacedSecrets bounds how many earlier secrets of a key are
// remembered (APIKey.ReplacedSHA256).
const MaxReplacedSecrets = 8

// retire adds the hash h (if any) to hashes, keeping the newest
// MaxReplacedSecrets.
func retire(hashes []string, h string) []string {
	if h == "" {
		return hashes
	}
	hashes = append(hashes, h)
	return hashes[max(0, len(hashes)-MaxReplacedSecrets):]
}

func activeAdmins(keys []APIKey, now time.Time) int {
	n := 0
	for i := range keys {
		if keys[i].Active(now) && slices.Contains(keys[i].Roles, RoleAdmin) {
			n++
		}
	}
	return n
}

// Rotate gives the key named name a new secret, keeping its name and
// roles, recording that by did it at now, and returns the new secret
// (shown only this once) and the key as stored. The old secret stays
// valid for spec.Grace.
func (f *KeyFile) Rotate(name string, spec RotateSpec, by string, now time.Time, others []APIKey) (string, APIKey, error) {
	if spec.Grace < 0 || spec.Grace > MaxRotationGrace {
		return "", APIKey{}, refuse(ErrBadKeyRequest, "grace %s: want 0 (the old secret stops at once) to %s", spec.Grace, MaxRotationGrace)
	}
	if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
		return "", APIKey{}, refuse(ErrBadKeyRequest, "the expiry %s is not in the future", spec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := configured(others, name); err != nil {
		return "", APIKey{}, err
	}
	token, fresh, err := NewAPIKey(name)
	if err != nil {
		return "", APIKey{}, fmt.Errorf("making a secret: %w", err)
	}
	var out APIKey
	_, err = f.Update(func(keys []APIKey) ([]APIKey, error) {
		i := findKey(keys, name)
		if i < 0 {
			return nil, refuse(ErrNoSuchKey, "no API key named %q in the keys file", truncate(name, 64))
		}
		k := &keys[i]
		if k.Revoked() {
			return nil, refuse(ErrKeyConflict, "API key %q was revoked; a revoked key cannot be rotated: create a new key", name)
		}
		if spec.ExpiresAt.IsZero() && k.Expired(now) {
			return nil, refuse(ErrBadKeyRequest, "API key %q expired at %s; give a new expiry to rotate it", name, k.ExpiresAt.UTC().Format(time.RFC3339))
		}
		// An expiry that ends the last active admin key sooner than it
		// would have ended revokes it, later: refused as Revoke is.
		if !spec.ExpiresAt.IsZero() && (k.ExpiresAt.IsZero() || spec.ExpiresAt.Before(k.ExpiresAt)) &&
			slices.Contains(k.Roles, RoleAdmin) && k.Active(now) && activeAdmins(keys, now)+activeAdmins(others, now) <= 1 {
			return nil, refuse(ErrKeyConflict, "API key %q is the last active admin key; an expiry would leave nobody to administer keys once it passes: add another admin key first", name)
		}
		// Only the secret replaced now may stay valid: an earlier one,
		// even inside its grace period, stops, and is remembered so
		// that its holder is told to use the new secret.
		k.ReplacedSHA256 = retire(k.ReplacedSHA256, k.PreviousSHA256)
		k.PreviousSHA256, k.PreviousValidUntil = "", time.Time{}
		if spec.Grace > 0 {
			k.PreviousSHA256, k.PreviousValidUntil = k.SHA256, now.Add(spec.Grace).UTC()
		} else {
			k.ReplacedSHA256 = retire(k.ReplacedSHA256, k.SHA256)
		}
		k.SHA256 = fresh.SHA256
		k.RotatedAt, k.RotatedBy = now.UTC(), by
		if !spec.ExpiresAt.IsZero() {
			k.ExpiresAt = spec.ExpiresAt.UTC()
		}
		out = *k
		return keys, nil
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return token, out, nil
}

// configKeysFrom is where ConfigKeys come from, unless Config says.
const configKeysFrom = "the server's configuration"

// Sources of keys, as the admin endpoints list them.
const (
	sourceFile   = "file"
	sourceConfig = "config"
)

// adminState is the server's side of key administration. mu serialises
// every change of the keys file made through the server and every reload;
// it guards the fields.
type adminState struct {
	mu       sync.Mutex
	fileKeys []APIKey    // the keys file's keys as last loaded
	loaded   os.FileInfo // the version of the file last loaded; nil: none
	// pending is set while the admin actions of the keys are not all
	// recorded: from New until the first ReloadKeys, and after a failed
	// recording; the watch retries. removed are removals not recorded
	// yet.
	pending bool
	removed []adminAction
	// inUse is set once keys were loaded: later loads must not take
	// them all away (checkKeysKept).
	inUse bool
	// records is what the log was last told of each key (keyChanges),
	// as saved in the records file; nil until the first recording if
	// there was none (the keys as loaded then count as told).
	records *keyRecords
	// rotations holds the dedup keys of the rotations this process
	// appended to the log since records were last kept: a rotation
	// records the key's new secret and expiry (keyChanges) only if the
	// log did not hold it before, and a retry must still know that.
	rotations map[string]bool
	// actors names who made the changes this server made itself (over
	// the admin API, or the admin key serve generated), by the dedup
	// key of their action, until they are recorded; any other action
	// is recorded by cli or config (adminActions).
	actors map[string]string
}

// initAdmin sets up what api/admin.go and api/readaudit.go add to a
// Server: the clock and default of the rate limits, the keyring from the
// keys file, and read auditing.
func (s *Server) initAdmin() error {
	s.auth.clock = s.cfg.Clock
	if err := s.cfg.RateLimit.Check(); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	s.auth.defaultLimit = s.cfg.RateLimit
	if s.cfg.KeyPollInterval <= 0 {
		s.cfg.KeyPollInterval = DefaultKeyPollInterval
	}
	if s.cfg.KeyFile != nil {
		s.admin.rotations = make(map[string]bool)
		s.admin.actors = make(map[string]string)
		if k := s.cfg.GeneratedKey; k != nil {
			s.admin.actors[string(createdDedup(k, sourceFile))] = event.AdminByServer
		}
		if _, err := s.loadKeysLocked(); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		s.admin.pending = true // recorded by ReloadKeys, or by Run
		s.admin.records = s.readRecords()
		if err := checkConfigNames(s.cfg.ConfigKeys, cmp.Or(s.cfg.ConfigKeysFrom, configKeysFrom), s.admin.records); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	s.reads = newReadAuditor(s.cfg.ReadAudit, s.cfg.MaxBatchEvents, s.cfg.Ledger)
	if s.reads != nil {
		m := s.reads.metrics()
		if s.cfg.Registerer != nil {
			if err := s.cfg.Registerer.Register(m); err != nil {
				return fmt.Errorf("api: registering metrics: %w", err)
			}
		}
	}
	return nil
}

// Run runs the server's background work until ctx ends: it watches the
// keys file (checked every KeyPollInterval), reloading it when it changes
// and recording in the log the administrative actions it shows (those of
// the keys New read, too, unless ReloadKeys already did), and it appends
// the reads that read auditing records, in batches. Once ctx ends it
// appends the reads still queued and returns; the error says how many
// could not be.
//
// Call it once, after New; call ReloadKeys before serving to have the
// log record the keys before the first request. Cancel Run's ctx after
// the HTTP server has shut down (so that no read is left unrecorded) and
// wait for it to return before closing the ledger.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var err error
	if s.cfg.KeyFile != nil {
		wg.Go(func() { s.watchKeys(ctx) })
	}
	if s.reads != nil {
		wg.Go(func() { err = s.reads.run(ctx, s) })
	}
	wg.Wait()
	return err
}

// ReloadKeys re-reads the keys file, swaps in the keyring its keys and
// ConfigKeys make, and records in the log, as leaves of kind admin, the
// administrative actions the keys show that the log does not hold yet:
// keys created, rotated, revoked or removed from the file. A file that
// cannot be read, or whose keys make no valid keyring, leaves the old
// keys in place. It does nothing without a KeyFile. It is safe for
// concurrent use.
func (s *Server) ReloadKeys(ctx context.Context) error {
	if s.cfg.KeyFile == nil {
		return nil
	}
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	_, err := s.reloadLocked(ctx)
	return err
}

// reloadLocked loads the keys file and records the admin actions. It
// returns the results of the appended actions by dedup key. s.admin.mu
// must be held.
func (s *Server) reloadLocked(ctx context.Context) (map[string]ledger.Result, error) {
	removed, err := s.loadKeysLocked()
	if err != nil {
		return nil, err
	}
	s.admin.removed = append(s.admin.removed, removed...)
	return s.recordLocked(ctx)
}

// recordLocked records the admin actions of the keys as last loaded, the
// removals not recorded yet, and the changes no other action records
// (keyChanges), then saves what the log now holds of each key.
// s.admin.mu must be held.
func (s *Server) recordLocked(ctx context.Context) (map[string]ledger.Result, error) {
	now := s.cfg.Clock()
	acts := append(adminActions(s.cfg.ConfigKeys, s.admin.fileKeys, now), s.admin.removed...)
	for i := range acts {
		if by, ok := s.admin.actors[string(acts[i].dedup)]; ok {
			acts[i].leaf.By = by
		}
	}
	results, err := s.recordAdmin(ctx, acts)
	if err == nil {
		// The changes are told after the rotations: a key's secret and
		// expiry are a change unless a rotation the log did not hold
		// records them.
		for _, a := range acts {
			r, ok := results[string(a.dedup)]
			if ok && !r.Duplicate && a.leaf.Action == event.AdminKeyRotated {
				s.admin.rotations[string(a.dedup)] = true
			}
			if ok {
				delete(s.admin.actors, string(a.dedup))
			}
		}
		changes, records := keyChanges(s.admin.records, s.cfg.ConfigKeys, s.admin.fileKeys, now,
			func(k *APIKey, source string) bool { return s.admin.rotations[string(rotatedDedup(k, source))] })
		if s.admin.records == nil {
			// No records yet: the names of keys the log recorded
			// and that are gone stay taken.
			records.Keys = append(records.Keys, s.removedInLog(ctx, func(name string) bool {
				return records.find(sourceFile, name) != nil || records.find(sourceConfig, name) != nil
			})...)
		}
		var more map[string]ledger.Result
		if more, err = s.recordAdmin(ctx, changes); err == nil {
			maps.Copy(results, more)
			s.admin.removed = nil
			s.keepRecordsLocked(records, append(acts, changes...), results)
			clear(s.admin.rotations)
		}
	}
	s.admin.pending = err != nil
	if err != nil {
		return nil, fmt.Errorf("recording administrative actions in the log: %w", err)
	}
	return results, nil
}

// loadKeysLocked reads the keys file and swaps in the new keyring. It
// returns the removals of keys: those the file held when it was last
// loaded, unrevoked, and no longer holds. s.admin.mu must be held (or
// the server not yet shared).
func (s *Server) loadKeysLocked() ([]adminAction, error) {
	fi, keys, kr, err := s.readKeysLocked()
	s.admin.loaded = fi // a bad file is reported once, not at every check
	if err != nil {
		return nil, err
	}
	return s.useKeysLocked(keys, kr), nil
}

// useKeysLocked swaps in kr, made of ConfigKeys and keys, the keys
// file's, and returns the removals of keys (removalsLocked).
// s.admin.mu must be held.
func (s *Server) useKeysLocked(keys []APIKey, kr *Keyring) []adminAction {
	s.SetKeyring(kr)
	s.admin.inUse = true
	removed := s.removalsLocked(keys)
	s.admin.fileKeys = keys
	return removed
}

// removalsLocked returns the removals of keys that loading keys makes:
// those the file held when it was last loaded, unrevoked, and no longer
// holds. s.admin.mu must be held.
func (s *Server) removalsLocked(keys []APIKey) []adminAction {
	var removed []adminAction
	now := s.cfg.Clock()
	for _, old := range s.admin.fileKeys {
		// A rotation keeps the key's creation time; a key made anew
		// under the same name has another.
		if i := findKey(keys, old.Name); (i < 0 || !keys[i].CreatedAt.Equal(old.CreatedAt)) && !old.Revoked() {
			removed = append(removed, removal(old, now))
		}
	}
	return removed
}

// reloadNewLocked loads a keys file put in place since the last check
// (another file than the one loaded) at once, if it can be loaded and
// removes no key, and records what it shows; it reports whether it did.
// A file that would remove keys, or is refused, may be one still being
// written (an editor that moved the old file aside): it is left as it
// is, for the watch to load once it has held for a check, so that no
// removal is recorded, nor refusal reported, from a file half written.
// s.admin.mu must be held.
func (s *Server) reloadNewLocked(ctx context.Context) (bool, error) {
	fi, keys, kr, err := s.readKeysLocked()
	if err != nil || len(s.removalsLocked(keys)) > 0 {
		return false, nil
	}
	s.admin.loaded = fi
	s.useKeysLocked(keys, kr)
	_, err = s.recordLocked(ctx)
	return true, err
}

// readKeysLocked reads the keys file and builds the keyring it makes with
// ConfigKeys, refusing (with the keys in use left as they are) a file
// that others than this process's user and root can change
// (KeyFile.Check), one that does not parse or holds an invalid key, and
// one that would take every key away (checkKeysKept). It returns the
// version of the file read (nil if it is absent). s.admin.mu must be
// held.
func (s *Server) readKeysLocked() (os.FileInfo, []APIKey, *Keyring, error) {
	kf := s.cfg.KeyFile
	// Stat before reading: a change in between is seen again by the
	// watch.
	fi, err := kf.stat()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading %s: %w", kf.Path(), err)
	}
	err = kf.Check()
	var keys []APIKey
	if err == nil {
		keys, err = kf.Read()
	}
	var kr *Keyring
	if err == nil {
		kr, err = NewKeyringOf(s.cfg.ConfigKeys, cmp.Or(s.cfg.ConfigKeysFrom, configKeysFrom), keys, kf.Path())
	}
	if err == nil {
		err = s.checkKeysKept(fi != nil, keys, kr)
	}
	if err != nil {
		return fi, nil, nil, fmt.Errorf("API keys in %s: %w (the keys loaded before stay in use)", kf.Path(), err)
	}
	return fi, keys, kr, nil
}

// ErrKeyFileRefused means the keys file, as it is now, would take away
// every key loaded from it, or every active admin key: it was removed,
// emptied, or edited by hand. The server keeps the keys in use, as for a
// file that does not parse; keys are revoked with accessledger apikey
// revoke or the admin API, which refuse to revoke the last admin key.
var ErrKeyFileRefused = errors.New("the keys file would take away the keys in use")

// checkKeysKept refuses the keys of the file (exists: whether it is
// there) and the keyring kr they make if the file is gone, or holds no
// key, while keys were loaded from it, or if kr has no active admin key
// while the keys in use have one. s.admin.mu must be held.
func (s *Server) checkKeysKept(exists bool, keys []APIKey, kr *Keyring) error {
	const revoke = `to revoke keys, use "accessledger apikey revoke" or POST /v1/admin/keys/NAME/revoke`
	if had := len(s.admin.fileKeys); had > 0 && len(keys) == 0 {
		what := "holds no key"
		if !exists {
			what = "is gone"
		}
		return fmt.Errorf("the file %s, but the server uses the %d keys loaded from it: restore it (move it back, or from a backup); %s (%w)",
			what, had, revoke, ErrKeyFileRefused)
	}
	now := s.cfg.Clock()
	if s.admin.inUse && activeAdmins(s.auth.keys.Load().keys, now) > 0 && activeAdmins(kr.keys, now) == 0 {
		return fmt.Errorf("the file leaves no active admin key, so nobody could administer keys: restore the admin keys it held; %s (%w)",
			revoke, ErrKeyFileRefused)
	}
	return nil
}

// keyWatch decides, at each check of the keys file, whether to reload
// it. It is watchKeys's.
type keyWatch struct {
	seen    os.FileInfo // the changed version seen at the last check,
	seenSet bool        // if any (nil: the file was absent)
}

// Decisions of keyWatch.reload.
const (
	keepKeys    = iota // the file is as loaded, or its change has not held yet
	loadNew            // a new file: load it now if it removes nothing (reloadNewLocked)
	loadSettled        // the change has held for a whole check: load it
)

// reload says whether to reload the keys file, found at version fi (nil:
// absent), loaded being the version last loaded. A file put in place by
// a rename (another file than the one loaded, or one where there was
// none), as the apikey command and the admin API write it, is loaded at
// once (loadNew) unless it would remove keys or be refused: an editor
// that moves the old file aside and writes a new one in its place makes
// a new file too, read half way at first. Any change, a removal or an
// edit in place included, is loaded once it has stayed the same for a
// whole check (loadSettled).
func (w *keyWatch) reload(fi, loaded os.FileInfo) int {
	switch {
	case sameVersion(fi, loaded):
		w.seenSet = false
		return keepKeys
	case w.seenSet && sameVersion(fi, w.seen):
		w.seenSet = false
		return loadSettled
	}
	w.seen, w.seenSet = fi, true
	if fi != nil && (loaded == nil || !os.SameFile(fi, loaded)) {
		return loadNew
	}
	return keepKeys
}

// watchKeys checks the keys file every KeyPollInterval until ctx ends.
// It reloads a changed file (a removed one included) when keyWatch says
// so: a file replaced at once, one changed in place once the change has
// held for a whole interval. It retries recording admin actions that
// failed.
func (s *Server) watchKeys(ctx context.Context) {
	tick := time.NewTicker(s.cfg.KeyPollInterval)
	defer tick.Stop()
	var (
		watch   keyWatch
		failing bool // the last retry of a recording failed
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fi, err := s.cfg.KeyFile.stat()
		if err != nil {
			s.log.Warn("checking the keys file failed", "path", s.cfg.KeyFile.Path(), "err", err)
			continue
		}
		s.admin.mu.Lock()
		loaded, pending := s.admin.loaded, s.admin.pending
		s.admin.mu.Unlock()
		decision := watch.reload(fi, loaded)
		if decision == loadNew {
			s.admin.mu.Lock()
			done, err := s.reloadNewLocked(ctx)
			s.admin.mu.Unlock()
			if done {
				if err != nil {
					s.log.Error("reloading API keys failed", "err", err)
				} else {
					s.log.Info("reloaded API keys: the keys file changed", "path", s.cfg.KeyFile.Path(), "count", s.auth.keys.Load().Len())
				}
				continue
			}
		}
		switch {
		case decision == loadSettled:
			if err := s.ReloadKeys(ctx); err != nil {
				s.log.Error("reloading API keys failed", "err", err)
				continue
			}
			s.log.Info("reloaded API keys: the keys file changed", "path", s.cfg.KeyFile.Path(), "count", s.auth.keys.Load().Len())
		case pending:
			// Retry recording the keys as loaded; report the first
			// failure of a series, and the recovery.
			s.admin.mu.Lock()
			_, err := s.recordLocked(ctx)
			s.admin.mu.Unlock()
			switch {
			case err != nil && !failing:
				s.log.Error("recording administrative actions in the log failed; retrying every check", "err", err)
			case err == nil && failing:
				s.log.Info("recorded the administrative actions that had failed")
			}
			failing = err != nil
		}
	}
}

// adminAction is an administrative action the keys show, and the dedup
// key that makes recording it idempotent: recording the same action again
// appends nothing.
type adminAction struct {
	leaf  event.Admin
	dedup []byte
}

// adminDedupNamespace prefixes the dedup keys of admin leaves.
const adminDedupNamespace = "admin\x00"

// adminDedup is the dedup key of an action: the namespace and a hash of
// what identifies it (never the key's secret; its stored hash at most,
// hashed again).
func adminDedup(parts ...string) []byte {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return append([]byte(adminDedupNamespace), h[:]...)
}

// keyIdentity identifies a key across rotations: its name and its
// creation time; for a key without one (a key of the configuration, or
// one made before keys recorded it), its name and the hash of its first
// secret.
func keyIdentity(k *APIKey, source string) string {
	if !k.CreatedAt.IsZero() {
		return k.Name + "\x00" + k.CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	if source == sourceConfig {
		h := sha256.Sum256([]byte(k.SHA256))
		return k.Name + "\x00" + string(h[:])
	}
	return k.Name + "\x00-"
}

func roleNames(roles []Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// createdDedup, rotatedDedup and revokedDedup are the dedup keys of the
// creation, the last rotation and the revocation of k.
func createdDedup(k *APIKey, source string) []byte {
	return adminDedup(event.AdminKeyCreated, keyIdentity(k, source))
}

func rotatedDedup(k *APIKey, source string) []byte {
	return adminDedup(event.AdminKeyRotated, keyIdentity(k, source), k.RotatedAt.UTC().Format(time.RFC3339Nano))
}

func revokedDedup(k *APIKey, source string) []byte {
	return adminDedup(event.AdminKeyRevoked, keyIdentity(k, source), k.RevokedAt.UTC().Format(time.RFC3339Nano))
}

// adminActions derives the actions the keys record: each key's creation,
// its last rotation and its revocation, oldest first, at the times the
// keys give (a creation without one at now). Who acted is "config" for a
// key of the configuration and "cli" for one of the keys file, whatever
// the file says (its created_by, rotated_by, revoked_by are an editor's
// to write): the server names the actors it knows itself (recordLocked).
func adminActions(configKeys, fileKeys []APIKey, now time.Time) []adminAction {
	var acts []adminAction
	add := func(keys []APIKey, source, by string) {
		for i := range keys {
			k := &keys[i]
			base := event.Admin{Key: k.Name, Roles: roleNames(k.Roles), ExpiresAt: k.ExpiresAt, By: by}
			created := base
			created.Action, created.Time = event.AdminKeyCreated, k.CreatedAt
			if created.Time.IsZero() {
				created.Time = now
			}
			acts = append(acts, adminAction{leaf: created, dedup: createdDedup(k, source)})
			if !k.RotatedAt.IsZero() {
				rotated := base
				rotated.Action, rotated.Time = event.AdminKeyRotated, k.RotatedAt
				if k.PreviousSHA256 != "" {
					rotated.PreviousValidUntil = k.PreviousValidUntil
				}
				acts = append(acts, adminAction{leaf: rotated, dedup: rotatedDedup(k, source)})
			}
			if k.Revoked() {
				revoked := base
				revoked.Action, revoked.Time = event.AdminKeyRevoked, k.RevokedAt
				acts = append(acts, adminAction{leaf: revoked, dedup: revokedDedup(k, source)})
			}
		}
	}
	add(configKeys, sourceConfig, event.AdminByConfig)
	add(fileKeys, sourceFile, event.AdminByCLI)
	slices.SortStableFunc(acts, func(a, b adminAction) int { return a.leaf.Time.Compare(b.leaf.Time) })
	return acts
}

// removal is the revocation of a key that vanished from the keys file
// (an edit by hand) without being revoked.
func removal(k APIKey, now time.Time) adminAction {
	h := sha256.Sum256([]byte(k.SHA256))
	return adminAction{
		leaf:  event.Admin{Action: event.AdminKeyRevoked, Time: now, By: event.AdminByCLI, Key: k.Name, Roles: roleNames(k.Roles), ExpiresAt: k.ExpiresAt},
		dedup: adminDedup("key_removed", keyIdentity(&k, sourceFile), string(h[:])),
	}
}

// recordAdmin appends the admin leaves of acts (those already in the log
// are not appended again) and returns the results by dedup key. An action
// whose leaf is invalid (a configured key's name too long for a leaf) is
// logged and skipped.
func (s *Server) recordAdmin(ctx context.Context, acts []adminAction) (map[string]ledger.Result, error) {
	now := s.cfg.Clock()
	entries := make([]ledger.Entry, 0, len(acts))
	kept := make([]adminAction, 0, len(acts))
	for _, a := range acts {
		leaf, err := event.EncodeAdminLeaf(&a.leaf, now)
		if err != nil {
			s.log.Error("an administrative action cannot be recorded in the log", "action", a.leaf.Action, "key", a.leaf.Key, "err", err)
			continue
		}
		entries = append(entries, ledger.Entry{Data: leaf, DedupKey: a.dedup, Fingerprint: sha256.Sum256(a.dedup)})
		kept = append(kept, a)
	}
	results := make(map[string]ledger.Result, len(entries))
	for start := 0; start < len(entries); start += s.cfg.MaxBatchEvents {
		end := min(start+s.cfg.MaxBatchEvents, len(entries))
		res, err := s.cfg.Ledger.Append(ctx, entries[start:end]...)
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			a := kept[start+i]
			results[string(a.dedup)] = r
			if !r.Duplicate {
				s.log.Info("recorded an administrative action in the log", "action", a.leaf.Action, "key", a.leaf.Key, "by", a.leaf.By, "index", r.Index)
			}
		}
	}
	return results, nil
}

// adminRoutes registers the admin endpoints: admin keys only.
func (s *Server) adminRoutes(e *gin.Engine) {
	// Refusals and listings are recorded (api/adminaudit.go).
	admin := s.auditAdmin(s.require(false))
	e.GET("/v1/admin/keys", admin, s.keyAdminOn, s.listKeys)
	e.POST("/v1/admin/keys", admin, s.keyAdminOn, s.keyFileKept, s.createKey)
	e.POST("/v1/admin/keys/:name/revoke", admin, s.keyAdminOn, s.keyFileKept, s.revokeKey)
	e.POST("/v1/admin/keys/:name/rotate", admin, s.keyAdminOn, s.keyFileKept, s.rotateKey)
}

// keyFileKept refuses a change while the keys file is refused
// (ErrKeyFileRefused): it would be made to what is left of the file, and
// take away the keys in use.
func (s *Server) keyFileKept(c *gin.Context) {
	s.admin.mu.Lock()
	_, _, _, err := s.readKeysLocked()
	s.admin.mu.Unlock()
	if errors.Is(err, ErrKeyFileRefused) {
		s.keyFail(c, err)
	}
}

// keyAdminOn answers 404 when the server has no keys file to administer.
func (s *Server) keyAdminOn(c *gin.Context) {
	if s.cfg.KeyFile == nil {
		writeError(c, http.StatusNotFound, "key administration is off: this server was started without a keys file")
	}
}

// keyInfo is a key as the admin endpoints show it: never its secret nor
// the secret's hash.
type keyInfo struct {
	Name               string     `json:"name"`
	Roles              []Role     `json:"roles"`
	Source             string     `json:"source"` // file or config
	Status             string     `json:"status"` // active, expired or revoked
	CreatedAt          time.Time  `json:"created_at,omitzero"`
	CreatedBy          string     `json:"created_by,omitempty"`
	ExpiresAt          time.Time  `json:"expires_at,omitzero"`
	RotatedAt          time.Time  `json:"rotated_at,omitzero"`
	RotatedBy          string     `json:"rotated_by,omitempty"`
	PreviousValidUntil time.Time  `json:"previous_valid_until,omitzero"`
	RevokedAt          time.Time  `json:"revoked_at,omitzero"`
	RevokedBy          string     `json:"revoked_by,omitempty"`
	RateLimit          *RateLimit `json:"rate_limit,omitempty"`
}

// KeyStatus says whether k is active, expired or revoked at now.
func KeyStatus(k *APIKey, now time.Time) string {
	switch {
	case k.Revoked():
		return "revoked"
	case k.Expired(now):
		return "expired"
	}
	return "active"
}

func newKeyInfo(k *APIKey, source string, now time.Time) keyInfo {
	ki := keyInfo{
		Name: k.Name, Roles: k.Roles, Source: source, Status: KeyStatus(k, now),
		CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, ExpiresAt: k.ExpiresAt,
		RotatedAt: k.RotatedAt, RotatedBy: k.RotatedBy,
		RevokedAt: k.RevokedAt, RevokedBy: k.RevokedBy, RateLimit: k.RateLimit,
	}
	if k.PreviousSHA256 != "" && now.Before(k.PreviousValidUntil) {
		ki.PreviousValidUntil = k.PreviousValidUntil
	}
	return ki
}

// adminAnswer is the answer of a change: the key, its secret if the
// change made one (shown only this once), and the index of the admin leaf
// recording the change.
type adminAnswer struct {
	Key      keyInfo `json:"key"`
	Secret   string  `json:"secret,omitempty"`
	LogIndex *uint64 `json:"log_index,omitempty"`
	Warning  string  `json:"warning,omitempty"`
}

// listKeys answers the keys of the configuration and of the keys file.
func (s *Server) listKeys(c *gin.Context) {
	s.admin.mu.Lock()
	fileKeys := s.admin.fileKeys
	s.admin.mu.Unlock()
	now := s.cfg.Clock()
	out := make([]keyInfo, 0, len(s.cfg.ConfigKeys)+len(fileKeys))
	for i := range s.cfg.ConfigKeys {
		out = append(out, newKeyInfo(&s.cfg.ConfigKeys[i], sourceConfig, now))
	}
	for i := range fileKeys {
		out = append(out, newKeyInfo(&fileKeys[i], sourceFile, now))
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"keys": out})
}

// keyRequest is the body of POST /v1/admin/keys.
type keyRequest struct {
	Name      string     `json:"name"`
	Roles     []string   `json:"roles"`
	ExpiresAt string     `json:"expires_at"`
	ExpiresIn string     `json:"expires_in"`
	RateLimit *RateLimit `json:"rate_limit"`
}

// rotateRequest is the optional body of POST /v1/admin/keys/:name/rotate.
type rotateRequest struct {
	Grace     string `json:"grace"`
	ExpiresAt string `json:"expires_at"`
	ExpiresIn string `json:"expires_in"`
}

// requestExpiry reads expires_at (an RFC 3339 time) or expires_in (a
// duration such as 720h or 90d).
func requestExpiry(at, in string, now time.Time) (time.Time, error) {
	switch {
	case at != "" && in != "":
		return time.Time{}, refuse(ErrBadKeyRequest, "give expires_at or expires_in, not both")
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return time.Time{}, refuse(ErrBadKeyRequest, "expires_at %q: want an RFC 3339 time such as 2027-01-01T00:00:00Z", at)
		}
		return t.UTC(), nil
	case in != "":
		d, err := ParseDuration(in)
		if err != nil && strings.Contains(err.Error(), "at most") {
			return time.Time{}, refuse(ErrBadKeyRequest, "expires_in: %v", err)
		}
		if err != nil || d <= 0 {
			return time.Time{}, refuse(ErrBadKeyRequest, "expires_in %q: want a positive duration such as 720h or 90d", truncate(in, 32))
		}
		return now.Add(d).UTC(), nil
	}
	return time.Time{}, nil
}

func (s *Server) createKey(c *gin.Context) {
	var req keyRequest
	if !decodeAdminBody(c, &req, false, "name, roles, expires_at, expires_in and rate_limit") {
		return
	}
	now := s.cfg.Clock()
	spec := KeySpec{Name: req.Name, RateLimit: req.RateLimit}
	for _, r := range req.Roles {
		spec.Roles = append(spec.Roles, Role(r))
	}
	var err error
	if spec.ExpiresAt, err = requestExpiry(req.ExpiresAt, req.ExpiresIn, now); err != nil {
		s.keyFail(c, err)
		return
	}
	if req.Name == "" {
		s.keyFail(c, refuse(ErrBadKeyRequest, "name is required"))
		return
	}
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	token, key, err := s.cfg.KeyFile.Create(spec, c.GetString(ctxKeyName), now, s.cfg.ConfigKeys)
	if err != nil {
		s.keyFail(c, err)
		return
	}
	s.answerChange(c, http.StatusCreated, &key, token, createdDedup(&key, sourceFile), c.GetString(ctxKeyName))
}

func (s *Server) revokeKey(c *gin.Context) {
	now := s.cfg.Clock()
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	key, err := s.cfg.KeyFile.Revoke(c.Param("name"), c.GetString(ctxKeyName), now, s.cfg.ConfigKeys)
	if err != nil {
		s.keyFail(c, err)
		return
	}
	s.answerChange(c, http.StatusOK, &key, "", revokedDedup(&key, sourceFile), c.GetString(ctxKeyName))
}

func (s *Server) rotateKey(c *gin.Context) {
	var req rotateRequest
	if !decodeAdminBody(c, &req, true, "grace, expires_at and expires_in") {
		return
	}
	now := s.cfg.Clock()
	var spec RotateSpec
	var err error
	if req.Grace != "" {
		if spec.Grace, err = ParseDuration(req.Grace); err != nil {
			s.keyFail(c, refuse(ErrBadKeyRequest, "grace %q: want a duration such as 1h or 7d", req.Grace))
			return
		}
	}
	if spec.ExpiresAt, err = requestExpiry(req.ExpiresAt, req.ExpiresIn, now); err != nil {
		s.keyFail(c, err)
		return
	}
	s.admin.mu.Lock()
	defer s.admin.mu.Unlock()
	token, key, err := s.cfg.KeyFile.Rotate(c.Param("name"), spec, c.GetString(ctxKeyName), now, s.cfg.ConfigKeys)
	if err != nil {
		s.keyFail(c, err)
		return
	}
	s.answerChange(c, http.StatusOK, &key, token, rotatedDedup(&key, sourceFile), c.GetString(ctxKeyName))
}

// answerChange makes a change of the keys file take effect at once (the
// keyring is swapped before the answer), records it in the log as made
// by by (the action of dedup), and answers. If recording fails the
// change stands: the answer says so, and the watch of the keys file
// retries. s.admin.mu must be held.
func (s *Server) answerChange(c *gin.Context, status int, key *APIKey, secret string, dedup []byte, by string) {
	ans := adminAnswer{Key: newKeyInfo(key, sourceFile, s.cfg.Clock()), Secret: secret}
	s.admin.actors[string(dedup)] = by
	removed, err := s.loadKeysLocked()
	if err != nil {
		// The file was written and checked a moment ago: this is not
		// the caller's doing.
		s.log.Error("loading the API keys just written failed", "err", err)
		if secret == "" {
			s.fail(c, err, "")
			return
		}
		ans.Warning = "the key is stored, but the server could not reload its keys; the operator can find the details in the server log"
	} else {
		s.admin.removed = append(s.admin.removed, removed...)
		// The change is recorded even if the caller goes away.
		results, rerr := s.recordLocked(context.WithoutCancel(c))
		if rerr != nil {
			s.log.Error("recording an administrative action in the log failed; it will be retried", "key", key.Name, "err", rerr)
			ans.Warning = "the change is made, but recording it in the log failed; the server retries until the log accepts it"
		} else if r, ok := results[string(dedup)]; ok {
			ans.LogIndex = &r.Index
		}
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(status, ans)
}

// keyFail answers a refused change with its status and sentence, and any
// other error as the server's.
func (s *Server) keyFail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, ErrNoSuchKey):
		writeError(c, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrKeyConflict):
		writeError(c, http.StatusConflict, err.Error())
	case errors.Is(err, ErrBadKeyRequest):
		writeError(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrKeyFileInvalid):
		// The operator's to fix; the keys loaded before stay in use.
		s.log.Error("key administration refused: the keys file does not parse", "err", err)
		writeError(c, http.StatusServiceUnavailable, "the server's keys file does not parse, so it cannot be changed; the operator must fix it (the keys loaded before stay in use)")
	case errors.Is(err, ErrKeyFileRefused):
		s.log.Error("key administration refused: the keys file would take away the keys in use", "err", err)
		writeError(c, http.StatusServiceUnavailable, "the server's keys file is gone, holds no key or no admin key, so it cannot be changed; the operator must restore it (the keys loaded before stay in use)")
	default:
		s.fail(c, err, "")
	}
}

// decodeAdminBody decodes the JSON object of an admin request into v,
// strictly: unknown fields and wrong types are refused with a sentence
// naming the field. fields lists the known ones, for the message. An
// empty body is accepted if optional. It answers the error itself and
// returns false on failure.
func decodeAdminBody(c *gin.Context, v any, optional bool, fields string) bool {
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxAdminBody))
	if tooBig := (*http.MaxBytesError)(nil); err != nil && !errors.As(err, &tooBig) {
		status, msg := bodyReadFailed(err) // not the JSON's fault: a timeout, a broken connection
		writeError(c, status, msg)
		return false
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(v)
		// Anything after the object, even a stray } or ], is refused.
		if err == nil && len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
			err = errors.New("more than one JSON value")
		}
	}
	if err == nil {
		// encoding/json takes a member name in any case and the last of
		// two members of one name: a tool that reads the first would
		// see another key than the one made.
		if msg := strictMembers(data, v); msg != "" {
			writeError(c, http.StatusBadRequest, msg+"; the fields are "+fields)
			return false
		}
		return true
	}
	if optional && errors.Is(err, io.EOF) {
		return true
	}
	var (
		maxErr    *http.MaxBytesError
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	msg := ""
	switch {
	case errors.As(err, &maxErr):
		writeError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxAdminBody))
		return false
	case errors.Is(err, io.EOF):
		msg = "the body is empty; send a JSON object with " + fields
	case errors.As(err, &typeErr) && typeErr.Field != "":
		msg = fmt.Sprintf("%s must be %s", typeErr.Field, jsonKind(typeErr.Type))
	case errors.As(err, &typeErr):
		msg = "the body must be a JSON object with " + fields
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		msg = "the body is not valid JSON (" + strings.TrimPrefix(err.Error(), "json: ") + ")"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		msg = fmt.Sprintf("unknown field %s; the fields are %s", strings.TrimPrefix(err.Error(), "json: unknown field "), fields)
	default:
		msg = "the body must be one JSON object with " + fields
	}
	writeError(c, http.StatusBadRequest, msg)
	return false
}

// strictMembers says what is wrong with member names in data that
// encoding/json accepted into v: a name given twice, or one that matches a
// field only by ignoring case. It returns "" if nothing is.
func strictMembers(data []byte, v any) string {
	fresh := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	err := jsonv2.Unmarshal(data, fresh, jsonv2.RejectUnknownMembers(true))
	var serr *jsontext.SyntacticError
	var uerr *jsonv2.SemanticError
	switch {
	case errors.As(err, &serr) && errors.Is(err, jsontext.ErrDuplicateName):
		return fmt.Sprintf("a field is given twice (at %s)", serr.JSONPointer)
	case errors.As(err, &uerr) && errors.Is(err, jsonv2.ErrUnknownName):
		return fmt.Sprintf("unknown field %q (names are lower case)", path.Base(string(uerr.JSONPointer)))
	}
	return ""
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	}
	return "of another type"
}
