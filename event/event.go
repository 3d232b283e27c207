// Package event defines the access event that accessledger records: its
// schema, its validation and its canonical encoding, and the leaf envelope
// that carries an event (or, later, an alert or a response) into the log.
//
// The package imports nothing else of accessledger, so the ledger, the
// detectors, the API and the client share one definition of an event.
package event

import (
	"net/netip"
	"time"
)

// MaxEntrySize is the largest leaf the log accepts, in bytes. C2SP
// tlog-tiles entry bundles prefix each entry with a uint16 length, so no
// entry may exceed 65,535 bytes.
const MaxEntrySize = 65535

// Category values accepted in Event.Category.
const (
	CategoryAuthentication = "authentication"
	CategoryAuthorization  = "authorization"
	CategoryDataAccess     = "data_access"
	CategoryAdmin          = "admin"
	CategorySystem         = "system"
)

// Outcome values accepted in Event.Outcome.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeUnknown = "unknown"
)

// Actor type values accepted in Actor.Type.
const (
	ActorUser    = "user"
	ActorService = "service"
	ActorAdmin   = "admin"
)

// Event is one access event: who accessed what, when, from where, and with
// which outcome. Field names follow OCSF/ECS meaning. An Event returned by
// Parse is valid and normalised (UTC time, canonical IP); encode it with
// Canonical.
type Event struct {
	// ID is the client's idempotency key. Submitting an event with an ID
	// that is already in the log returns the original entry.
	ID string `json:"id,omitempty"`
	// Time is when the access happened.
	Time time.Time `json:"time"`
	// Service is the system that was accessed.
	Service  string    `json:"service"`
	Actor    Actor     `json:"actor"`
	Source   Source    `json:"source"`
	Action   string    `json:"action"`
	Category string    `json:"category"`
	Outcome  string    `json:"outcome"`
	Reason   string    `json:"reason,omitempty"`
	Resource *Resource `json:"resource,omitempty"`
	// MFA reports whether multi-factor authentication was used, when known.
	MFA        *bool             `json:"mfa,omitempty"`
	RequestID  string            `json:"request_id,omitempty"`
	Tenant     string            `json:"tenant,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Actor is the identity that performed the access.
type Actor struct {
	ID      string `json:"id"`
	Type    string `json:"type,omitempty"`
	Session string `json:"session,omitempty"`
}

// Source is where the access came from.
type Source struct {
	IP        netip.Addr `json:"ip"`
	Port      uint16     `json:"port,omitzero"`
	UserAgent string     `json:"user_agent,omitempty"`
	Geo       *Geo       `json:"geo,omitempty"`
	ASN       uint32     `json:"asn,omitzero"`
}

// Geo is the geographic location of a source, as resolved by the submitter.
type Geo struct {
	// Country is an ISO 3166-1 alpha-2 code, upper case.
	Country string   `json:"country,omitempty"`
	Lat     *float64 `json:"lat,omitempty"`
	Lon     *float64 `json:"lon,omitempty"`
}

// Resource is the object that was accessed.
type Resource struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
}
