package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"
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
type APIKey struct {
	Name   string `yaml:"name" json:"name"`
	SHA256 string `yaml:"sha256" json:"sha256"` // hex
	Roles  []Role `yaml:"roles" json:"roles"`
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
	byHash map[string]APIKey
}

// NewKeyring validates keys and indexes them.
func NewKeyring(keys []APIKey) (*Keyring, error) {
	kr := &Keyring{byHash: make(map[string]APIKey, len(keys))}
	for i, k := range keys {
		if k.Name == "" {
			return nil, fmt.Errorf("api key %d: name is required", i)
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
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
		h := strings.ToLower(k.SHA256)
		if _, dup := kr.byHash[h]; dup {
			return nil, fmt.Errorf("api key %q: same secret as another key", k.Name)
		}
		kr.byHash[h] = k
	}
	return kr, nil
}

// Len returns the number of keys.
func (kr *Keyring) Len() int { return len(kr.byHash) }

// auth holds the current keyring; SetKeyring swaps it atomically.
type auth struct {
	keys atomic.Pointer[Keyring]
}

// SetKeyring replaces the API keys, for example on SIGHUP.
func (s *Server) SetKeyring(kr *Keyring) { s.auth.keys.Store(kr) }

// Keys of the values require leaves in the gin context.
const (
	ctxKeyName = "api_key" // the name (never the secret) of the caller's key
	ctxPublic  = "public"  // true if the endpoint was served without a key
)

// require returns middleware admitting only requests bearing a key with
// one of roles (admin is always admitted). public skips the check, and
// marks the answer as publicly cacheable.
func (s *Server) require(public bool, roles ...Role) gin.HandlerFunc {
	need := rolesSentence(roles)
	return func(c *gin.Context) {
		if public {
			c.Set(ctxPublic, true)
			return
		}
		// The scheme name is case-insensitive (RFC 9110, section 11.1).
		scheme, token, _ := strings.Cut(c.GetHeader("Authorization"), " ")
		token = strings.TrimSpace(token)
		if xkey := c.GetHeader("X-Api-Key"); xkey != "" && c.GetHeader("Authorization") == "" {
			// CrowdSec bouncers authenticate to the Local API this way.
			scheme, token = "Bearer", strings.TrimSpace(xkey)
		}
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			c.Header("WWW-Authenticate", `Bearer realm="accessledger"`)
			writeError(c, http.StatusUnauthorized, `missing API key: send the header "Authorization: Bearer KEY"`)
			return
		}
		key, ok := s.auth.keys.Load().byHash[HashToken(token)]
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="accessledger", error="invalid_token"`)
			writeError(c, http.StatusUnauthorized, "unknown API key: check the key, or ask an admin for one (accessledger apikey add)")
			return
		}
		c.Set(ctxKeyName, key.Name)
		if !slices.Contains(key.Roles, RoleAdmin) && !slices.ContainsFunc(key.Roles, func(r Role) bool { return slices.Contains(roles, r) }) {
			writeError(c, http.StatusForbidden, fmt.Sprintf("API key %q may not use this endpoint: it needs %s", key.Name, need))
			return
		}
	}
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
