package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/accessledger/accessledger/event"
)

// Role is what an API key may do.
type Role string

// Roles. Admin may do everything.
const (
	RoleSubmitter Role = "submitter" // append events; read checkpoints, hash tiles and proofs
	RoleAuditor   Role = "auditor"   // read everything in the log
	RoleResponder Role = "responder" // consume alerts, acknowledge and resolve them
	RoleBouncer   Role = "bouncer"   // pull IP decisions (CrowdSec bouncers, with X-Api-Key)
	RoleAdmin     Role = "admin"     // everything, including /metrics
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleSubmitter, RoleAuditor, RoleResponder, RoleBouncer, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want submitter, auditor, responder, bouncer or admin)", s)
}

// APIKey is a key as the server stores it: never the secret itself, only
// its SHA-256. Keys are 256-bit random tokens, so a plain hash is enough.
//
// Only Name, SHA256 and Roles are required. The rest records the key's
// life: who created, rotated or revoked it and when (the server records
// each of these in the log as a leaf of kind admin), when it expires, and
// its own rate limit.
type APIKey struct {
	Name   string `yaml:"name" json:"name"`
	SHA256 string `yaml:"sha256" json:"sha256"` // hex
	Roles  []Role `yaml:"roles" json:"roles"`

	// CreatedAt and CreatedBy say when and by whom the key was made: the
	// acting admin key's name, "cli" or "accessledger" (generated at
	// the first start).
	CreatedAt time.Time `yaml:"created_at,omitempty" json:"created_at,omitzero"`
	CreatedBy string    `yaml:"created_by,omitempty" json:"created_by,omitempty"`
	// ExpiresAt is when the key stops being valid; zero for never.
	ExpiresAt time.Time `yaml:"expires_at,omitempty" json:"expires_at,omitzero"`
	// RotatedAt and RotatedBy record the last rotation (a new secret,
	// the same name and roles). PreviousSHA256 is the hash of the secret
	// it replaced, still valid until PreviousValidUntil (a grace period).
	RotatedAt          time.Time `yaml:"rotated_at,omitempty" json:"rotated_at,omitzero"`
	RotatedBy          string    `yaml:"rotated_by,omitempty" json:"rotated_by,omitempty"`
	PreviousSHA256     string    `yaml:"previous_sha256,omitempty" json:"previous_sha256,omitempty"`
	PreviousValidUntil time.Time `yaml:"previous_valid_until,omitempty" json:"previous_valid_until,omitzero"`
	// ReplacedSHA256 are the hashes of the key's earlier secrets that no
	// longer work (at most MaxReplacedSecrets, the newest last), so that
	// their holders are told to use the new secret rather than that the
	// key is unknown.
	ReplacedSHA256 []string `yaml:"replaced_sha256,omitempty" json:"replaced_sha256,omitempty"`
	// RevokedAt and RevokedBy record the revocation. A revoked key stays
	// in the file, so that its name is never reused and the log's
	// records of it stay unambiguous; it is refused (401).
	RevokedAt time.Time `yaml:"revoked_at,omitempty" json:"revoked_at,omitzero"`
	RevokedBy string    `yaml:"revoked_by,omitempty" json:"revoked_by,omitempty"`
	// RateLimit, if set, replaces the server's default rate limit for
	// this key (per_second 0: no limit).
	RateLimit *RateLimit `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
}

// RateLimit is a token bucket: PerSecond requests per second on average,
// up to Burst at once. PerSecond 0 means no limit.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second" json:"per_second"`
	Burst     int     `yaml:"burst" json:"burst"`
}

// Check reports a rate limit that makes no sense.
func (r RateLimit) Check() error {
	switch {
	case math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.PerSecond < 0:
		return fmt.Errorf("rate_limit.per_second %v must be 0 (no limit) or more", r.PerSecond)
	case r.Burst < 0:
		return fmt.Errorf("rate_limit.burst %d must not be negative", r.Burst)
	}
	return nil
}

// effective returns the bucket's size: Burst, or if that is 0 the rate
// per second rounded up (at least 1).
func (r RateLimit) effective() RateLimit {
	if r.PerSecond > 0 && r.Burst <= 0 {
		r.Burst = max(1, int(math.Ceil(r.PerSecond)))
	}
	return r
}

// Revoked reports whether the key was revoked.
func (k *APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Expired reports whether the key has expired at now.
func (k *APIKey) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// Active reports whether the key is neither revoked nor expired at now.
func (k *APIKey) Active(now time.Time) bool { return !k.Revoked() && !k.Expired(now) }

// CheckKeyName reports a name that a new key may not have.
func CheckKeyName(name string) error {
	if !event.ValidName(name) {
		return fmt.Errorf("key name %q: want 1 to 64 characters [A-Za-z0-9._@-], starting with a letter or digit", name)
	}
	return nil
}

// LogValue keeps the key hash out of logs.
func (k APIKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", k.Name), slog.Any("roles", k.Roles))
}

// NewAPIKey returns a fresh secret token and its stored form.
func NewAPIKey(name string, roles ...Role) (token string, key APIKey, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", APIKey{}, err
	}
	token = "al_" + base64.RawURLEncoding.EncodeToString(b)
	return token, APIKey{Name: name, SHA256: HashToken(token), Roles: roles}, nil
}

// HashToken returns the stored form (hex SHA-256) of a secret token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Keyring maps token hashes to keys. It is immutable once built; the
// server swaps whole keyrings to reload.
type Keyring struct {
	keys   []APIKey
	byHash map[string]keyEntry
}

// keyEntry is what a token hash stands for: a key, by its current secret,
// by the secret a rotation replaced (valid during its grace period), or by
// an earlier secret that no longer works.
type keyEntry struct {
	key      *APIKey
	previous bool
	replaced bool
}

// NewKeyring validates keys and indexes them. Revoked and expired keys
// are kept, so that their holders are told why they are refused.
func NewKeyring(keys []APIKey) (*Keyring, error) {
	kr := &Keyring{keys: slices.Clone(keys), byHash: make(map[string]keyEntry, len(keys))}
	names := make(map[string]bool, len(keys))
	for i := range kr.keys {
		k := &kr.keys[i]
		if k.Name == "" {
			return nil, fmt.Errorf("api key %d: name is required", i)
		}
		// A name goes into the log as who acted (at most 128 bytes) and
		// into URL paths; the reserved ones would pass for the CLI's.
		if err := checkKeyNameFree(k.Name); err != nil {
			return nil, fmt.Errorf("api key %d: %w", i, err)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("api key %q: two keys have this name", k.Name)
		}
		names[k.Name] = true
		if !isSHA256Hex(k.SHA256) {
			return nil, fmt.Errorf("api key %q: sha256 must be 64 hex digits", k.Name)
		}
		if len(k.Roles) == 0 {
			return nil, fmt.Errorf("api key %q: at least one role is required", k.Name)
		}
		for _, r := range k.Roles {
			if _, err := ParseRole(string(r)); err != nil {
				return nil, fmt.Errorf("api key %q: %w", k.Name, err)
			}
		}
		if k.RateLimit != nil {
			if err := k.RateLimit.Check(); err != nil {
				return nil, fmt.Errorf("api key %q: %w", k.Name, err)
			}
		}
		if err := kr.index(k.SHA256, keyEntry{key: k}); err != nil {
			return nil, err
		}
		if k.PreviousSHA256 != "" {
			if !isSHA256Hex(k.PreviousSHA256) {
				return nil, fmt.Errorf("api key %q: previous_sha256 must be 64 hex digits", k.Name)
			}
			if err := kr.index(k.PreviousSHA256, keyEntry{key: k, previous: true}); err != nil {
				return nil, err
			}
		}
		for _, h := range k.ReplacedSHA256 {
			if !isSHA256Hex(h) {
				return nil, fmt.Errorf("api key %q: replaced_sha256 must hold hashes of 64 hex digits", k.Name)
			}
			// Only for the message: never in the way of a valid secret.
			if _, taken := kr.byHash[strings.ToLower(h)]; !taken {
				kr.byHash[strings.ToLower(h)] = keyEntry{key: k, replaced: true}
			}
		}
	}
	return kr, nil
}

// NewKeyringOf builds the keyring of the keys of the server's
// configuration (configKeys, from configFrom, such as "the config file
// /etc/accessledger.yaml") and those of the keys file at filePath. Their
// names are one set: a name in both is refused with an error naming both
// places, so that the operator knows which two keys to look at.
func NewKeyringOf(configKeys []APIKey, configFrom string, fileKeys []APIKey, filePath string) (*Keyring, error) {
	for i := range fileKeys {
		if name := fileKeys[i].Name; findKey(configKeys, name) >= 0 {
			return nil, fmt.Errorf("api key %q is defined twice, in the api_keys of %s and in the keys file %s: a name must be unique; remove or rename one of them",
				name, configFrom, filePath)
		}
	}
	return NewKeyring(append(slices.Clone(configKeys), fileKeys...))
}

func (kr *Keyring) index(hash string, e keyEntry) error {
	h := strings.ToLower(hash)
	if _, dup := kr.byHash[h]; dup {
		return fmt.Errorf("api key %q: same secret as another key", e.key.Name)
	}
	kr.byHash[h] = e
	return nil
}

func isSHA256Hex(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// Len returns the number of keys, revoked and expired ones included.
func (kr *Keyring) Len() int { return len(kr.keys) }

// Keys returns a copy of the keys, in the order given to NewKeyring.
func (kr *Keyring) Keys() []APIKey { return slices.Clone(kr.keys) }

// auth holds the current keyring, which SetKeyring swaps atomically, and
// the per-key rate limiters.
type auth struct {
	keys atomic.Pointer[Keyring]
	// defaultLimit is the rate limit of keys without their own.
	defaultLimit RateLimit
	// limiters maps a key name to its *keyLimiter; entries are replaced
	// when the key's limit changes.
	limiters sync.Map
	// clock tells the time for expiry and rate limits; nil: time.Now.
	clock func() time.Time
	// changedMu guards changed, which is closed and replaced each time
	// the keyring is: requests that last wait on it to notice a key
	// revoked while they run (keysChanged).
	changedMu sync.Mutex
	changed   chan struct{}
}

// keysChanged returns a channel closed when the keyring is next replaced.
// Take it before checking a key (keyStillValid), so that no change in
// between goes unseen.
func (a *auth) keysChanged() <-chan struct{} {
	a.changedMu.Lock()
	defer a.changedMu.Unlock()
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	return a.changed
}

func (a *auth) now() time.Time {
	if a.clock != nil {
		return a.clock()
	}
	return time.Now()
}

// keyLimiter is the token bucket of one key, for the limit it was made
// for.
type keyLimiter struct {
	limit RateLimit
	lim   *rate.Limiter
}

// limit returns the rate limit of k: its own, else the default.
func (a *auth) limit(k *APIKey) RateLimit {
	if k.RateLimit != nil {
		return k.RateLimit.effective()
	}
	return a.defaultLimit.effective()
}

// throttle takes a token from k's bucket. If there is none it returns how
// long until there is one, and k's limit.
func (a *auth) throttle(k *APIKey, now time.Time) (time.Duration, RateLimit) {
	limit := a.limit(k)
	if limit.PerSecond <= 0 {
		return 0, limit
	}
	v, ok := a.limiters.Load(k.Name)
	kl, _ := v.(*keyLimiter)
	if !ok || kl.limit != limit {
		fresh := &keyLimiter{limit: limit, lim: rate.NewLimiter(rate.Limit(limit.PerSecond), limit.Burst)}
		if ok {
			if a.limiters.CompareAndSwap(k.Name, kl, fresh) {
				kl = fresh
			} else if v, ok := a.limiters.Load(k.Name); ok {
				kl = v.(*keyLimiter)
			}
		} else {
			v, _ := a.limiters.LoadOrStore(k.Name, fresh)
			kl = v.(*keyLimiter)
		}
	}
	r := kl.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, limit
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, limit
	}
	return 0, limit
}

// SetKeyring replaces the API keys, for example on SIGHUP.
func (s *Server) SetKeyring(kr *Keyring) {
	s.auth.keys.Store(kr)
	s.auth.changedMu.Lock()
	if s.auth.changed != nil {
		close(s.auth.changed)
		s.auth.changed = nil
	}
	s.auth.changedMu.Unlock()
}

// Keys of the values require leaves in the gin context.
const (
	ctxKeyName  = "api_key"      // the name (never the secret) of the caller's key
	ctxKeyHash  = "api_key_hash" // the SHA-256 of the caller's secret, for keyStillValid
	ctxKeyRoles = "api_roles"    // the roles the endpoint admits, for keyStillValid
	ctxPublic   = "public"       // true if the endpoint was served without a key
	// ctxRefusedKey is the name of a known key refused (401: revoked,
	// expired, a replaced secret), for the records of the admin
	// endpoints (api/adminaudit.go); ctxKeyName is not set then.
	ctxRefusedKey = "api_key_refused"
)

// keyStillValid reports whether the key that opened c's request may still
// make it, for requests that last (alert streams, long polls): keys are
// checked when a request starts, and a key revoked, expired or stripped of
// the role since must not go on receiving alerts. A request served without
// a key stays valid.
func (s *Server) keyStillValid(c *gin.Context) bool {
	hash := c.GetString(ctxKeyHash)
	if hash == "" {
		return true
	}
	entry, ok := s.auth.keys.Load().byHash[hash]
	if !ok || refusal(entry, s.auth.now()) != "" {
		return false
	}
	roles, _ := c.Get(ctxKeyRoles)
	need, _ := roles.([]Role)
	return hasRole(entry.key, need)
}

// refuseKey answers 401 for a key that keyStillValid no longer admits.
func (s *Server) refuseKey(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="accessledger", error="invalid_token"`)
	msg := "the API key was revoked while the request waited"
	if entry, ok := s.auth.keys.Load().byHash[c.GetString(ctxKeyHash)]; ok {
		if m := refusal(entry, s.auth.now()); m != "" {
			msg = m
		} else {
			msg = fmt.Sprintf("API key %q no longer has a role this endpoint admits", entry.key.Name)
		}
	}
	writeError(c, http.StatusUnauthorized, msg)
}

// hasRole reports whether k may use an endpoint admitting roles: it has
// one of them, or is an admin.
func hasRole(k *APIKey, roles []Role) bool {
	return slices.Contains(k.Roles, RoleAdmin) || slices.ContainsFunc(k.Roles, func(r Role) bool { return slices.Contains(roles, r) })
}

// require returns middleware admitting only requests bearing a key with
// one of roles (admin is always admitted). public skips the check, and
// marks the answer as publicly cacheable.
//
// X-Api-Key is read when there is no Authorization header, or, on the
// bouncer endpoints, always: CrowdSec's Local API reads only X-Api-Key
// there, so a bouncer behind a proxy that adds its own Authorization
// (Basic) still gets in.
func (s *Server) require(public bool, roles ...Role) gin.HandlerFunc {
	need := rolesSentence(roles)
	xkeyFirst := slices.Contains(roles, RoleBouncer)
	return func(c *gin.Context) {
		if public {
			c.Set(ctxPublic, true)
			return
		}
		// The scheme name is case-insensitive (RFC 9110, section 11.1).
		scheme, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		token = strings.TrimSpace(token)
		if xkey := c.GetHeader("X-Api-Key"); xkey != "" && (xkeyFirst || c.GetHeader("Authorization") == "") {
			// CrowdSec bouncers authenticate to the Local API this way.
			scheme, token = "Bearer", strings.TrimSpace(xkey)
		}
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			c.Header("WWW-Authenticate", `Bearer realm="accessledger"`)
			msg := `missing API key: send the header "Authorization: Bearer KEY"`
			if c.GetHeader("Authorization") != "" {
				// A key sent another way is not a missing key.
				msg = authHeaderProblem(scheme, token)
				if c.GetHeader("X-Api-Key") != "" {
					msg += "; X-Api-Key is read only when there is no Authorization header"
				}
			}
			writeError(c, http.StatusUnauthorized, msg)
			return
		}
		hash := HashToken(token)
		entry, ok := s.auth.keys.Load().byHash[hash]
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="accessledger", error="invalid_token"`)
			writeError(c, http.StatusUnauthorized, "unknown API key: check the key, or ask an admin for one (accessledger apikey add)")
			return
		}
		key, now := entry.key, s.auth.now()
		if msg := refusal(entry, now); msg != "" {
			c.Set(ctxRefusedKey, key.Name)
			c.Header("WWW-Authenticate", `Bearer realm="accessledger", error="invalid_token"`)
			writeError(c, http.StatusUnauthorized, msg)
			return
		}
		c.Set(ctxKeyName, key.Name)
		if wait, limit := s.auth.throttle(key, now); wait > 0 {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(c, http.StatusTooManyRequests, fmt.Sprintf(
				"API key %q is over its rate limit of %g requests per second (bursts of %d); retry after the number of seconds in Retry-After",
				key.Name, limit.PerSecond, limit.Burst))
			return
		}
		if !hasRole(key, roles) {
			writeError(c, http.StatusForbidden, fmt.Sprintf("API key %q may not use this endpoint: it needs %s", key.Name, need))
			return
		}
		c.Set(ctxKeyHash, hash)
		c.Set(ctxKeyRoles, roles)
	}
}

// refusal says why a known key is refused at now: revoked, expired, or a
// secret replaced by a rotation whose grace period is over. It returns ""
// for a key that may be used. The messages name the key (its holder knows
// it) and never its secret.
func refusal(e keyEntry, now time.Time) string {
	k := e.key
	switch {
	case k.Revoked():
		return fmt.Sprintf("API key %q was revoked (%s); ask an admin for a new key", k.Name, k.RevokedAt.UTC().Format(time.RFC3339))
	case e.previous && !now.Before(k.PreviousValidUntil):
		return fmt.Sprintf("this secret of API key %q was replaced when the key was rotated, and stopped being valid at %s; use the new secret", k.Name, k.PreviousValidUntil.UTC().Format(time.RFC3339))
	case e.replaced:
		return fmt.Sprintf("this secret of API key %q was replaced when the key was rotated, and is no longer valid; use the new secret", k.Name)
	case k.Expired(now):
		return fmt.Sprintf("API key %q expired at %s; ask an admin to rotate it (accessledger apikey rotate) or for a new key", k.Name, k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return ""
}

// rolesSentence names the roles an endpoint accepts, admin included:
// "the admin role", "the role auditor or admin", "the role submitter,
// auditor or admin".
func rolesSentence(roles []Role) string {
	names := make([]string, 0, len(roles)+1)
	for _, r := range roles {
		if r != RoleAdmin {
			names = append(names, string(r))
		}
	}
	if len(names) == 0 {
		return "the admin role"
	}
	return "the role " + strings.Join(names, ", ") + " or admin"
}

// authHeaderProblem says what is wrong with an Authorization header that
// is not "Bearer KEY", never echoing what could be a key.
func authHeaderProblem(scheme, token string) string {
	switch {
	case token == "" && strings.EqualFold(scheme, "Bearer"):
		return `missing API key after "Bearer": send the header "Authorization: Bearer KEY"`
	case token == "":
		return `the Authorization header must be "Bearer KEY": put "Bearer " before the key`
	}
	if !isSchemeName(scheme) {
		// A key sent with something after it ("KEY extra"): its
		// scheme is the key itself, which a proxy logging error
		// bodies would keep.
		return `the Authorization header must be "Bearer KEY": put "Bearer " before the key, and nothing after it`
	}
	return fmt.Sprintf(`the Authorization header must be "Bearer KEY", not a %q credential`, scheme)
}

// isSchemeName reports whether s looks like an authentication scheme's
// name (Basic, Token, Digest, ApiKey...), which is safe to repeat: up to
// 16 letters. A key (al_... with digits and an underscore) is not.
func isSchemeName(s string) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}
