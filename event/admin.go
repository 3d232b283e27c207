package event

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
)

// Admin actions: what an admin leaf records.
const (
	AdminKeyCreated = "key_created"
	AdminKeyRevoked = "key_revoked"
	AdminKeyRotated = "key_rotated"
	// AdminKeyChanged is a change to a key that no other action
	// records: its roles, expiry or rate limit, its secret without a
	// rotation, or its revocation undone, as an edit of the keys file
	// by hand makes them. Changed says which.
	AdminKeyChanged = "key_changed"
)

// What a key_changed action changed (Admin.Changed).
const (
	AdminChangedRoles     = "roles"
	AdminChangedExpiry    = "expires_at"
	AdminChangedRateLimit = "rate_limit"
	// AdminChangedSecret is a new secret (or a previous one made valid
	// again) without a rotation: the leaf never says which.
	AdminChangedSecret = "secret"
	// AdminChangedRevocation is a revocation undone.
	AdminChangedRevocation = "revoked_at"
)

var adminChanges = []string{AdminChangedRoles, AdminChangedExpiry, AdminChangedRateLimit, AdminChangedSecret, AdminChangedRevocation}

// Who did an administrative action, besides the name of an admin API key.
const (
	// AdminByCLI is an action taken with the accessledger apikey command
	// (or an edit of the keys file), outside the HTTP API.
	AdminByCLI = "cli"
	// AdminByConfig is a key given in the server's configuration file.
	AdminByConfig = "config"
	// AdminByServer is the admin key the server generated on its first
	// start.
	AdminByServer = "accessledger"
)

// MaxAdminRoles bounds the roles an admin leaf lists.
const MaxAdminRoles = 16

// nameRE is the form of the names of API keys and responders: they name
// who acted in the log's leaves, and appear in URL paths and storage
// keys, so they are short and plain.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidName reports whether s may name an API key or a responder: 1 to 64
// characters [A-Za-z0-9._@-], starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Admin is an administrative action on the API keys, recorded in the log
// as a leaf of kind "admin" so that the log itself records who was allowed
// to write and read it, and who decided so:
//
//	{"kind":"admin","received_at":"...","body":{"action":"key_created","time":"...","by":"ops","key":"billing-svc","roles":["submitter"]}}
//
// It names the key, never its secret nor the secret's hash (a key_changed
// action says that the secret changed, not what it became). Canonical
// encodes it; ParseAdmin reads one back.
type Admin struct {
	// Action is one of the Admin constants.
	Action string `json:"action"`
	// Time is when it was done.
	Time time.Time `json:"time"`
	// By names who did it: the name of the acting admin API key, or
	// AdminByCLI, AdminByConfig or AdminByServer.
	By string `json:"by"`
	// Key is the name of the API key acted on.
	Key string `json:"key"`
	// Roles are the key's roles.
	Roles []string `json:"roles"`
	// ExpiresAt is when the key stops being valid; zero for never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// PreviousValidUntil, for a rotation, is until when the replaced
	// secret stays valid (a grace period); zero if it stopped at once.
	PreviousValidUntil time.Time `json:"previous_valid_until,omitzero"`
	// Changed, for a key_changed action only, lists what changed (the
	// AdminChanged constants, in their order); Roles, ExpiresAt and
	// RateLimit are then the key's new ones.
	Changed []string `json:"changed,omitempty"`
	// RateLimit, for a key_changed action only, is the key's own rate
	// limit; nil if it has none (the server's default applies).
	RateLimit *AdminRateLimit `json:"rate_limit,omitempty"`
}

// AdminRateLimit is a key's own rate limit: PerSecond requests a second
// on average (0: none), bursts of Burst.
type AdminRateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

var adminActions = []string{AdminKeyCreated, AdminKeyRevoked, AdminKeyRotated, AdminKeyChanged}

// Canonical returns the canonical JSON encoding of a: fields in a fixed
// order, empty optional fields omitted, times in TimeFormat. Two admin
// actions that mean the same thing encode to the same bytes.
func (a *Admin) Canonical() []byte {
	b := make([]byte, 0, 256)
	b = append(b, '{')
	b = appendKey(b, "action", true)
	b = appendString(b, a.Action)
	b = appendKey(b, "time", false)
	b = appendTime(b, a.Time)
	b = appendKey(b, "by", false)
	b = appendString(b, a.By)
	b = appendKey(b, "key", false)
	b = appendString(b, a.Key)
	b = appendKey(b, "roles", false)
	b = append(b, '[')
	for i, r := range a.Roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, r)
	}
	b = append(b, ']')
	if !a.ExpiresAt.IsZero() {
		b = appendKey(b, "expires_at", false)
		b = appendTime(b, a.ExpiresAt)
	}
	if !a.PreviousValidUntil.IsZero() {
		b = appendKey(b, "previous_valid_until", false)
		b = appendTime(b, a.PreviousValidUntil)
	}
	if len(a.Changed) > 0 {
		b = appendKey(b, "changed", false)
		b = append(b, '[')
		for i, c := range a.Changed {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c)
		}
		b = append(b, ']')
	}
	if r := a.RateLimit; r != nil {
		b = appendKey(b, "rate_limit", false)
		b = append(b, `{"per_second":`...)
		b = appendCoordinate(b, r.PerSecond, false)
		b = append(b, `,"burst":`...)
		b = strconv.AppendInt(b, int64(r.Burst), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// MarshalJSON encodes a canonically.
func (a *Admin) MarshalJSON() ([]byte, error) { return a.Canonical(), nil }

// Validate reports the first reason a is not a well-formed admin action,
// naming the field; nil if it is.
func (a *Admin) Validate() error {
	bad := func(field, reason string) error {
		return &ValidationError{Fields: []FieldError{{Field: field, Reason: reason}}}
	}
	switch {
	case !slices.Contains(adminActions, a.Action):
		return bad("action", "must be one of "+strings.Join(adminActions, ", "))
	case a.Time.IsZero():
		return bad("time", "required")
	case a.By == "" || len(a.By) > MaxActorIDLen:
		return bad("by", fmt.Sprintf("must be 1 to %d bytes", MaxActorIDLen))
	case a.Key == "" || len(a.Key) > MaxActorIDLen:
		return bad("key", fmt.Sprintf("must be 1 to %d bytes", MaxActorIDLen))
	case len(a.Roles) == 0 || len(a.Roles) > MaxAdminRoles:
		return bad("roles", fmt.Sprintf("must list 1 to %d roles", MaxAdminRoles))
	case !a.PreviousValidUntil.IsZero() && a.Action != AdminKeyRotated:
		return bad("previous_valid_until", "only a rotation has one")
	case a.Action == AdminKeyChanged && len(a.Changed) == 0:
		return bad("changed", "a key_changed action says what changed")
	case a.Action != AdminKeyChanged && len(a.Changed) > 0:
		return bad("changed", "only a key_changed action has one")
	case a.Action != AdminKeyChanged && a.RateLimit != nil:
		return bad("rate_limit", "only a key_changed action has one")
	case a.RateLimit != nil && (math.IsNaN(a.RateLimit.PerSecond) || math.IsInf(a.RateLimit.PerSecond, 0) || a.RateLimit.PerSecond < 0 || a.RateLimit.Burst < 0):
		return bad("rate_limit", "per_second and burst must be 0 or more")
	}
	// In the constants' order, each once: one change has one encoding.
	last := -1
	for _, c := range a.Changed {
		i := slices.Index(adminChanges, c)
		if i <= last {
			return bad("changed", fmt.Sprintf("must list, in this order and each once, some of %s", strings.Join(adminChanges, ", ")))
		}
		last = i
	}
	for _, r := range a.Roles {
		if !isVerb(r) {
			return bad("roles", fmt.Sprintf("role %q must be a lower-case name [a-z0-9_], starting with a letter", truncate(r, MaxActionLen)))
		}
	}
	if !utf8Valid(a.By, a.Key) {
		return bad("key", "text must be valid UTF-8")
	}
	return nil
}

// ParseAdmin decodes the body of an admin leaf strictly (unknown fields,
// duplicate names and wrongly-typed values are rejected) and validates it.
func ParseAdmin(data []byte) (*Admin, error) {
	var a Admin
	if err := json.Unmarshal(data, &a, strict); err != nil {
		return nil, fmt.Errorf("decoding admin action: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	a.Time = a.Time.UTC()
	if !a.ExpiresAt.IsZero() {
		a.ExpiresAt = a.ExpiresAt.UTC()
	}
	if !a.PreviousValidUntil.IsZero() {
		a.PreviousValidUntil = a.PreviousValidUntil.UTC()
	}
	return &a, nil
}

// EncodeAdminLeaf validates a and returns its canonical leaf of kind
// admin.
func EncodeAdminLeaf(a *Admin, receivedAt time.Time) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return EncodeLeaf(KindAdmin, receivedAt, a.Canonical())
}

// DecodeAdminLeaf parses a leaf of kind admin and its body.
func DecodeAdminLeaf(data []byte) (*Leaf, *Admin, error) {
	l, err := DecodeLeaf(data)
	if err != nil {
		return nil, nil, err
	}
	if l.Kind != KindAdmin {
		return nil, nil, fmt.Errorf("decoding admin leaf: kind %q is not %q", l.Kind, KindAdmin)
	}
	a, err := ParseAdmin(bytes.TrimSpace(l.Body))
	if err != nil {
		return nil, nil, err
	}
	return l, a, nil
}
