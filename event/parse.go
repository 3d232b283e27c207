package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on the fields of an event. They keep every entry far below
// MaxEntrySize and keep personal data bounded.
const (
	MaxIDLen         = 128
	MaxServiceLen    = 128
	MaxActorIDLen    = 256
	MaxSessionLen    = 256
	MaxActionLen     = 64
	MaxReasonLen     = 256
	MaxUserAgentLen  = 1024
	MaxResourceLen   = 512
	MaxRequestIDLen  = 128
	MaxTenantLen     = 128
	MaxAttributes    = 64
	MaxAttrKeyLen    = 64
	MaxAttrValueLen  = 1024
	DefaultMaxFuture = 24 * time.Hour
)

// FieldError is one reason an event was rejected. Field is the JSON path of
// the offending field ("source.ip"), or empty when the event as a whole is
// malformed.
type FieldError struct {
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// ValidationError lists every reason an event was rejected.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// ParseOptions tunes validation. The zero value validates with the defaults.
type ParseOptions struct {
	// Now is the time the event is received; events dated more than
	// MaxFuture after it are rejected. Zero disables the check.
	Now time.Time
	// MaxFuture bounds clock skew; zero means DefaultMaxFuture.
	MaxFuture time.Duration
}

// wire types mirror Event with pointers, so that a missing field, a null and
// a wrong type can each be told apart and reported precisely.
type wireEvent struct {
	ID         *string           `json:"id"`
	Time       *string           `json:"time"`
	Service    *string           `json:"service"`
	Actor      *wireActor        `json:"actor"`
	Source     *wireSource       `json:"source"`
	Action     *string           `json:"action"`
	Category   *string           `json:"category"`
	Outcome    *string           `json:"outcome"`
	Reason     *string           `json:"reason"`
	Resource   *Resource         `json:"resource"`
	MFA        *bool             `json:"mfa"`
	RequestID  *string           `json:"request_id"`
	Tenant     *string           `json:"tenant"`
	Attributes map[string]string `json:"attributes"`
}

type wireActor struct {
	ID      *string `json:"id"`
	Type    *string `json:"type"`
	Session *string `json:"session"`
}

type wireSource struct {
	IP        *string      `json:"ip"`
	Port      *json.Number `json:"port"`
	UserAgent *string      `json:"user_agent"`
	Geo       *wireGeo     `json:"geo"`
	ASN       *json.Number `json:"asn"`
}

type wireGeo struct {
	Country *string      `json:"country"`
	Lat     *json.Number `json:"lat"`
	Lon     *json.Number `json:"lon"`
}

// Parse decodes one JSON access event, validates it and normalises it. It
// returns a *ValidationError naming every offending field, or the event.
// Unknown fields are rejected: extra data belongs in attributes.
func Parse(data []byte, opts ParseOptions) (*Event, error) {
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, &ValidationError{Fields: []FieldError{decodeError(err)}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ValidationError{Fields: []FieldError{{Reason: "unexpected data after the event object"}}}
	}
	return w.validate(opts)
}

// decodeError turns an encoding/json error into a FieldError.
func decodeError(err error) FieldError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return FieldError{Reason: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return FieldError{Reason: "an event must be a JSON object"}
		}
		return FieldError{Field: field, Reason: "must be " + jsonTypeName(typ.Type.String()) + ", not " + typ.Value}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Reason: "truncated or empty JSON"}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return FieldError{Field: name, Reason: "unknown field"}
	}
	return FieldError{Reason: strings.TrimPrefix(msg, "json: ")}
}

func jsonTypeName(goType string) string {
	switch {
	case strings.Contains(goType, "string") && !strings.Contains(goType, "map"):
		return "a string"
	case strings.Contains(goType, "Number"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "map"), strings.Contains(goType, "event."):
		return "an object"
	}
	return goType
}

func (w *wireEvent) validate(opts ParseOptions) (*Event, error) {
	v := &ValidationError{}
	e := &Event{}

	if w.ID != nil {
		e.ID = *w.ID
		switch {
		case e.ID == "":
			v.add("id", "must not be empty when present")
		case len(e.ID) > MaxIDLen:
			v.add("id", "longer than %d bytes", MaxIDLen)
		case !isToken(e.ID):
			v.add("id", "must be printable ASCII without spaces")
		}
	}

	if w.Time == nil {
		v.add("time", "required")
	} else if t, err := time.Parse(time.RFC3339Nano, *w.Time); err != nil {
		v.add("time", "must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z")
	} else {
		e.Time = t.UTC()
		maxFuture := opts.MaxFuture
		if maxFuture == 0 {
			maxFuture = DefaultMaxFuture
		}
		if !opts.Now.IsZero() && e.Time.After(opts.Now.Add(maxFuture)) {
			v.add("time", "more than %s in the future", maxFuture)
		}
		if e.Time.Year() < 1970 {
			v.add("time", "before 1970")
		}
	}

	e.Service = requiredText(v, "service", w.Service, MaxServiceLen)

	if w.Actor == nil {
		v.add("actor", "required")
	} else {
		e.Actor.ID = requiredText(v, "actor.id", w.Actor.ID, MaxActorIDLen)
		e.Actor.Type = enum(v, "actor.type", w.Actor.Type, false, ActorUser, ActorService, ActorAdmin)
		e.Actor.Session = optionalText(v, "actor.session", w.Actor.Session, MaxSessionLen)
	}

	if w.Source == nil {
		v.add("source", "required")
	} else {
		e.Source = w.Source.validate(v)
	}

	if w.Action == nil {
		v.add("action", "required")
	} else if e.Action = *w.Action; !isVerb(e.Action) {
		v.add("action", "must be a lower-case verb of 1 to %d characters [a-z0-9_], starting with a letter", MaxActionLen)
	}
	e.Category = enum(v, "category", w.Category, true,
		CategoryAuthentication, CategoryAuthorization, CategoryDataAccess, CategoryAdmin, CategorySystem)
	e.Outcome = enum(v, "outcome", w.Outcome, true, OutcomeSuccess, OutcomeFailure, OutcomeUnknown)
	e.Reason = optionalText(v, "reason", w.Reason, MaxReasonLen)

	if w.Resource != nil {
		r := *w.Resource
		checkText(v, "resource.type", r.Type, MaxResourceLen)
		checkText(v, "resource.id", r.ID, MaxResourceLen)
		if r.Type == "" && r.ID == "" {
			v.add("resource", "must have a type or an id")
		}
		e.Resource = &r
	}
	e.MFA = w.MFA
	e.RequestID = optionalText(v, "request_id", w.RequestID, MaxRequestIDLen)
	e.Tenant = optionalText(v, "tenant", w.Tenant, MaxTenantLen)

	if w.Attributes != nil {
		if len(w.Attributes) > MaxAttributes {
			v.add("attributes", "more than %d entries", MaxAttributes)
		}
		keys := make([]string, 0, len(w.Attributes))
		for k := range w.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !isAttrKey(k) {
				v.add("attributes", "key %q must be 1 to %d characters [A-Za-z0-9_.-]", truncate(k, MaxAttrKeyLen), MaxAttrKeyLen)
				continue
			}
			checkText(v, "attributes."+k, w.Attributes[k], MaxAttrValueLen)
		}
		if len(w.Attributes) > 0 {
			e.Attributes = w.Attributes
		}
	}

	if len(v.Fields) > 0 {
		return nil, v
	}
	return e, nil
}

func (w *wireSource) validate(v *ValidationError) Source {
	var s Source
	if w.IP == nil {
		v.add("source.ip", "required")
	} else if ip, err := netip.ParseAddr(*w.IP); err != nil {
		v.add("source.ip", "not an IP address")
	} else if ip.Zone() != "" {
		v.add("source.ip", "must not carry an IPv6 zone")
	} else {
		s.IP = ip.Unmap()
	}
	if w.Port != nil {
		if p, ok := uintInRange(*w.Port, 1, 65535); ok {
			s.Port = uint16(p)
		} else {
			v.add("source.port", "must be an integer from 1 to 65535")
		}
	}
	s.UserAgent = optionalText(v, "source.user_agent", w.UserAgent, MaxUserAgentLen)
	if w.ASN != nil {
		if a, ok := uintInRange(*w.ASN, 1, math.MaxUint32); ok {
			s.ASN = uint32(a)
		} else {
			v.add("source.asn", "must be an integer from 1 to 4294967295")
		}
	}
	if w.Geo != nil {
		g := &Geo{}
		if w.Geo.Country != nil {
			g.Country = *w.Geo.Country
			if !isCountry(g.Country) {
				v.add("source.geo.country", "must be an ISO 3166-1 alpha-2 code in upper case")
			}
		}
		g.Lat = coordinate(v, "source.geo.lat", w.Geo.Lat, 90)
		g.Lon = coordinate(v, "source.geo.lon", w.Geo.Lon, 180)
		if (g.Lat == nil) != (g.Lon == nil) {
			v.add("source.geo", "lat and lon must be given together")
		}
		if g.Country == "" && g.Lat == nil && g.Lon == nil {
			v.add("source.geo", "must have a country or coordinates")
		}
		s.Geo = g
	}
	return s
}

func uintInRange(n json.Number, lo, hi uint64) (uint64, bool) {
	u, err := strconv.ParseUint(string(n), 10, 64)
	return u, err == nil && u >= lo && u <= hi
}

func coordinate(v *ValidationError, field string, n *json.Number, limit float64) *float64 {
	if n == nil {
		return nil
	}
	f, err := strconv.ParseFloat(string(*n), 64)
	if err != nil || math.IsNaN(f) || f < -limit || f > limit {
		v.add(field, "must be a number from %g to %g", -limit, limit)
		return nil
	}
	return &f
}

func requiredText(v *ValidationError, field string, s *string, max int) string {
	if s == nil {
		v.add(field, "required")
		return ""
	}
	if *s == "" {
		v.add(field, "must not be empty")
		return ""
	}
	checkText(v, field, *s, max)
	return *s
}

func optionalText(v *ValidationError, field string, s *string, max int) string {
	if s == nil {
		return ""
	}
	checkText(v, field, *s, max)
	return *s
}

// checkText bounds a free-text field and rejects control characters and
// invalid UTF-8, which have no place in an audit record.
func checkText(v *ValidationError, field, s string, max int) {
	if len(s) > max {
		v.add(field, "longer than %d bytes", max)
		return
	}
	if !utf8.ValidString(s) {
		v.add(field, "must be valid UTF-8")
		return
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			v.add(field, "must not contain control characters")
			return
		}
	}
}

func enum(v *ValidationError, field string, s *string, required bool, allowed ...string) string {
	if s == nil {
		if required {
			v.add(field, "required; one of %s", strings.Join(allowed, ", "))
		}
		return ""
	}
	for _, a := range allowed {
		if *s == a {
			return a
		}
	}
	v.add(field, "must be one of %s", strings.Join(allowed, ", "))
	return ""
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isVerb(s string) bool {
	if len(s) == 0 || len(s) > MaxActionLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func isAttrKey(s string) bool {
	if len(s) == 0 || len(s) > MaxAttrKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isCountry(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
