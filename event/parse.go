package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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

// ValidationError lists every reason an event was rejected: values of the
// wrong type, unknown fields and semantic problems together, in the order
// of the schema.
type ValidationError struct {
	Fields []FieldError

	// receiving is ParseOptions.Receiving, for checkText.
	receiving bool

	// failed holds the paths whose value could not be decoded; no further
	// error is reported at or below them.
	failed map[string]bool
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// add records a problem with field, unless field (or a field that holds
// it) already failed to decode: a value of the wrong type is reported once,
// not also as missing.
func (e *ValidationError) add(field, format string, args ...any) {
	if e.full() {
		return
	}
	for p := field; ; {
		if e.failed[p] {
			return
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	e.Fields = append(e.Fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// MaxFieldErrors bounds the problems one event's ValidationError lists:
// an event of 700,000 unknown members made an answer of 38 MB. The last
// one listed then says that there are more.
const MaxFieldErrors = 20

// moreProblems ends a list cut at MaxFieldErrors.
var moreProblems = FieldError{Reason: fmt.Sprintf("and more problems: at most %d are listed", MaxFieldErrors)}

// full reports, once the list is at MaxFieldErrors, that it says so.
func (e *ValidationError) full() bool {
	switch {
	case len(e.Fields) < MaxFieldErrors-1:
		return false
	case len(e.Fields) == MaxFieldErrors-1:
		e.Fields = append(e.Fields, moreProblems)
	}
	return true
}

// fail records a value that could not be decoded.
func (e *ValidationError) fail(field, reason string) {
	if !e.full() {
		e.Fields = append(e.Fields, FieldError{Field: field, Reason: reason})
	}
	if e.failed == nil {
		e.failed = make(map[string]bool)
	}
	e.failed[field] = true
}

// failedUnder reports whether a field at or below path failed to decode.
func (e *ValidationError) failedUnder(path string) bool {
	for f := range e.failed {
		if f == path || strings.HasPrefix(f, path+".") {
			return true
		}
	}
	return false
}

// fieldOrder is the order of the schema, in which errors are listed.
var fieldOrder = []string{"", "id", "time", "service",
	"actor", "actor.id", "actor.type", "actor.session",
	"source", "source.ip", "source.port", "source.user_agent",
	"source.geo", "source.geo.country", "source.geo.lat", "source.geo.lon", "source.asn",
	"action", "category", "outcome", "reason", "resource", "resource.type", "resource.id",
	"mfa", "request_id", "tenant", "attributes"}

// fieldRank orders a field: known fields by the schema, a field below a
// known one (an attribute, an unknown member) right after it, unknown
// top-level fields last.
func fieldRank(field string) int {
	best := 2 * len(fieldOrder)
	for i, f := range fieldOrder {
		if field == f {
			return 2 * i
		}
		if f != "" && strings.HasPrefix(field, f+".") {
			best = 2*i + 1
		}
	}
	return best
}

// ParseOptions tunes validation. The zero value validates with the defaults.
type ParseOptions struct {
	// Now is the time the event is received; events dated more than
	// MaxFuture after it are rejected. Zero disables the check.
	Now time.Time
	// MaxFuture bounds clock skew; zero means DefaultMaxFuture.
	MaxFuture time.Duration
	// Receiving marks an event being received (POST /v1/events, and
	// clients checking an event before they send it): its text fields
	// must not hold C1 control characters or bidirectional overrides
	// either, which make a terminal show other text than is stored
	// (evil\u202egnp.exe shows as evilexe.png). Leaves already in a log
	// are parsed without it: earlier versions stored such text.
	Receiving bool
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
	IP        *string  `json:"ip"`
	Port      *uint16  `json:"port"`
	UserAgent *string  `json:"user_agent"`
	Geo       *wireGeo `json:"geo"`
	ASN       *uint32  `json:"asn"`
}

type wireGeo struct {
	Country *string  `json:"country"`
	Lat     *float64 `json:"lat"`
	Lon     *float64 `json:"lon"`
}

// strict is how events are decoded: JSON per RFC 8259 with the strictness
// an audit record needs, which encoding/json lacks. Member names match
// exactly (no case folding), duplicate names and unknown members are
// rejected, invalid UTF-8 is rejected, and numbers must be JSON numbers of
// the right range (no quoted numbers, no fractions for integers).
var strict = json.JoinOptions(json.RejectUnknownMembers(true), json.MatchCaseInsensitiveNames(false))

// errAttributeNull sends Parse to the member-by-member decoding, which
// refuses an attribute given as null.
var errAttributeNull = errors.New("an attribute may be null")

// hasEmptyValue reports whether one of m's values is "".
func hasEmptyValue(m map[string]string) bool {
	for _, v := range m {
		if v == "" {
			return true
		}
	}
	return false
}

// Parse decodes one JSON access event, validates it and normalises it. It
// returns a *ValidationError naming every offending field, or the event.
// Unknown fields are rejected: extra data belongs in attributes.
//
// A document that decodes as a whole (the common case) is decoded once,
// by a fast decoder when it has the usual shape (decodeFast).
// Otherwise it is checked as a whole (one JSON object, valid UTF-8, no
// duplicate names, nothing after it), a problem there being reported
// alone, and then every member is decoded on its own, so that a value of
// the wrong type does not hide the problems of the others.
func Parse(data []byte, opts ParseOptions) (*Event, error) {
	// On the stack: only an invalid event's errors go to the heap.
	ve := ValidationError{receiving: opts.Receiving}
	v := &ve
	w, out, ok := decodeFast(data)
	if !ok {
		w, out = &wireEvent{}, &eventStore{}
		err := json.Unmarshal(data, w, strict)
		if err == nil && bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
			// The one document that is not an object and still
			// decodes into one, as nothing.
			return nil, &ValidationError{Fields: []FieldError{{Reason: "an event must be a JSON object"}}}
		}
		if err == nil && hasEmptyValue(w.Attributes) {
			// An attribute given as null decodes into its string as "",
			// without an error (it was stored so): the member-by-member
			// decoding below tells null from "". Rare: an empty value.
			err = errAttributeNull
		}
		if err != nil {
			// Something does not decode: take the document apart member
			// by member to report every problem, not only the first.
			var doc jsontext.Value
			if err := json.Unmarshal(data, &doc, strict); err != nil {
				return nil, &ValidationError{Fields: []FieldError{decodeError(err)}}
			}
			if doc.Kind() != '{' {
				return nil, &ValidationError{Fields: []FieldError{{Reason: "an event must be a JSON object"}}}
			}
			w = decodeEvent(v, doc)
		}
	}
	e := w.validate(v, opts, out)
	if len(v.Fields) > 0 {
		sort.SliceStable(v.Fields, func(i, j int) bool {
			return fieldRank(v.Fields[i].Field) < fieldRank(v.Fields[j].Field)
		})
		// The note that more problems were left out stays last.
		if i := slices.IndexFunc(v.Fields, func(f FieldError) bool { return f == moreProblems }); i >= 0 {
			v.Fields = append(slices.Delete(v.Fields, i, i+1), moreProblems)
		}
		return nil, &ValidationError{Fields: v.Fields}
	}
	return e, nil
}

// fieldReasons gives the reason for a value of the wrong type or range, by
// field, where the Go type alone would say too little.
var fieldReasons = map[string]string{
	"source.port":    "must be an integer from 1 to 65535",
	"source.asn":     "must be an integer from 1 to 4294967295",
	"source.geo.lat": "must be a number from -90 to 90",
	"source.geo.lon": "must be a number from -180 to 180",
	"mfa":            "must be a boolean",
	"attributes":     "must be an object of strings",
}

// decodeError turns an error of the whole document into a FieldError.
func decodeError(err error) FieldError {
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &syn):
		if errors.Is(syn.Err, jsontext.ErrDuplicateName) {
			return FieldError{Field: pointerPath(syn.JSONPointer), Reason: "duplicate field"}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(syn.Err, io.ErrUnexpectedEOF) {
			return FieldError{Reason: "truncated or empty JSON"}
		}
		return FieldError{Reason: fmt.Sprintf("malformed JSON at byte %d: %v", syn.ByteOffset, syn.Err)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Reason: "truncated or empty JSON"}
	}
	return FieldError{Reason: "malformed JSON"}
}

// valueError gives the reason a value at path could not be decoded.
func valueError(path string, err error) FieldError {
	var sem *json.SemanticError
	if !errors.As(err, &sem) {
		return FieldError{Field: path, Reason: "malformed value"}
	}
	field := joinPath(path, pointerPath(sem.JSONPointer))
	if r, ok := fieldReasons[field]; ok {
		return FieldError{Field: field, Reason: r}
	}
	return FieldError{Field: field, Reason: "must be " + kindName(sem.GoType)}
}

// pointerPath turns a JSON pointer (/source/geo/lat) into a dotted path.
func pointerPath(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	if name == "" {
		return path
	}
	return path + "." + name
}

func kindName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a number"
	}
	return "of another type"
}

// members calls fn with each member of the JSON object raw (at path), in
// document order, and reports the members fn does not know. A null is an
// absent object (false); any other non-object is reported (false).
func members(v *ValidationError, path string, raw jsontext.Value, known []string, fn func(name string, value jsontext.Value)) bool {
	switch raw.Kind() {
	case 'n':
		return false
	case '{':
	default:
		reason, ok := fieldReasons[path]
		if !ok {
			reason = "must be an object"
		}
		v.fail(path, reason)
		return false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.ReadToken(); err != nil {
		v.fail(path, "malformed object")
		return false
	}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			v.fail(path, "malformed object")
			return false
		}
		name := tok.String() // before ReadValue, which voids tok
		value, err := dec.ReadValue()
		if err != nil {
			v.fail(path, "malformed object")
			return false
		}
		if known != nil && !slices.Contains(known, name) {
			unknownField(v, path, name, known)
			continue
		}
		fn(name, value)
	}
	return true
}

// unknownField reports an unknown member; if it differs from a known name
// only in case, it says so, and the known field is not also reported as
// missing.
func unknownField(v *ValidationError, path, name string, known []string) {
	for _, k := range known {
		if strings.EqualFold(k, name) {
			v.fail(joinPath(path, name), fmt.Sprintf("unknown field (names are case-sensitive: did you mean %q?)", k))
			if v.failed == nil {
				v.failed = make(map[string]bool)
			}
			v.failed[joinPath(path, k)] = true
			return
		}
	}
	v.fail(joinPath(path, name), "unknown field")
}

// decodeValue decodes one member's value into dst, reporting a value of
// the wrong type or range. A null leaves dst at its zero value.
func decodeValue(v *ValidationError, path string, raw jsontext.Value, dst any) {
	if err := json.Unmarshal(raw, dst, strict); err != nil {
		f := valueError(path, err)
		v.fail(f.Field, f.Reason)
	}
}

var (
	eventFields    = []string{"id", "time", "service", "actor", "source", "action", "category", "outcome", "reason", "resource", "mfa", "request_id", "tenant", "attributes"}
	actorFields    = []string{"id", "type", "session"}
	sourceFields   = []string{"ip", "port", "user_agent", "geo", "asn"}
	geoFields      = []string{"country", "lat", "lon"}
	resourceFields = []string{"type", "id"}
)

// decodeEvent decodes the members of an event object one by one into the
// wire form, recording in v every member that cannot be decoded.
func decodeEvent(v *ValidationError, doc jsontext.Value) *wireEvent {
	w := &wireEvent{}
	members(v, "", doc, eventFields, func(name string, raw jsontext.Value) {
		switch name {
		case "id":
			decodeValue(v, name, raw, &w.ID)
		case "time":
			decodeValue(v, name, raw, &w.Time)
		case "service":
			decodeValue(v, name, raw, &w.Service)
		case "action":
			decodeValue(v, name, raw, &w.Action)
		case "category":
			decodeValue(v, name, raw, &w.Category)
		case "outcome":
			decodeValue(v, name, raw, &w.Outcome)
		case "reason":
			decodeValue(v, name, raw, &w.Reason)
		case "mfa":
			decodeValue(v, name, raw, &w.MFA)
		case "request_id":
			decodeValue(v, name, raw, &w.RequestID)
		case "tenant":
			decodeValue(v, name, raw, &w.Tenant)
		case "actor":
			a := &wireActor{}
			if members(v, name, raw, actorFields, func(n string, raw jsontext.Value) {
				switch n {
				case "id":
					decodeValue(v, "actor.id", raw, &a.ID)
				case "type":
					decodeValue(v, "actor.type", raw, &a.Type)
				case "session":
					decodeValue(v, "actor.session", raw, &a.Session)
				}
			}) {
				w.Actor = a
			}
		case "source":
			s := &wireSource{}
			if members(v, name, raw, sourceFields, func(n string, raw jsontext.Value) {
				switch n {
				case "ip":
					decodeValue(v, "source.ip", raw, &s.IP)
				case "port":
					decodeValue(v, "source.port", raw, &s.Port)
				case "user_agent":
					decodeValue(v, "source.user_agent", raw, &s.UserAgent)
				case "asn":
					decodeValue(v, "source.asn", raw, &s.ASN)
				case "geo":
					g := &wireGeo{}
					if members(v, "source.geo", raw, geoFields, func(n string, raw jsontext.Value) {
						switch n {
						case "country":
							decodeValue(v, "source.geo.country", raw, &g.Country)
						case "lat":
							decodeValue(v, "source.geo.lat", raw, &g.Lat)
						case "lon":
							decodeValue(v, "source.geo.lon", raw, &g.Lon)
						}
					}) {
						s.Geo = g
					}
				}
			}) {
				w.Source = s
			}
		case "resource":
			r := &Resource{}
			if members(v, name, raw, resourceFields, func(n string, raw jsontext.Value) {
				switch n {
				case "type":
					decodeValue(v, "resource.type", raw, &r.Type)
				case "id":
					decodeValue(v, "resource.id", raw, &r.ID)
				}
			}) {
				w.Resource = r
			}
		case "attributes":
			attrs := map[string]string{}
			if members(v, name, raw, nil, func(k string, raw jsontext.Value) {
				var s string
				// null decodes into a string as nothing, without an
				// error: it was stored as "".
				if err := json.Unmarshal(raw, &s, strict); err != nil || raw.Kind() != '"' {
					v.fail(joinPath(name, k), "must be a string")
					return
				}
				attrs[k] = s
			}) {
				w.Attributes = attrs
			}
		}
	})
	return w
}

// validate checks the decoded event and adds every problem to v. It
// returns the normalised event, in st, which is valid only if v has no
// fields.
func (w *wireEvent) validate(v *ValidationError, opts ParseOptions, st *eventStore) *Event {
	e := &st.e

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
	} else if t, err := parseTime(*w.Time); err != nil {
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
		if y := e.Time.Year(); y < 1970 || y > 9999 {
			v.add("time", "must be between 1970 and 9999 (in UTC)")
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
		e.Source = w.Source.validate(v, &st.g)
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
		r := &st.r
		*r = *w.Resource
		checkText(v, "resource.type", r.Type, MaxResourceLen)
		checkText(v, "resource.id", r.ID, MaxResourceLen)
		if r.Type == "" && r.ID == "" && !v.failedUnder("resource") {
			v.add("resource", "must have a type or an id")
		}
		e.Resource = r
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

	return e
}

// eventStore holds a parsed event and what it may point to: validate
// allocated the three apart. The fast decoder's store holds it too
// (fastStore), so that a common event takes one allocation besides its
// text.
type eventStore struct {
	e Event
	r Resource
	g Geo
}

// validate checks the decoded source; g is where its geo goes, if any.
func (w *wireSource) validate(v *ValidationError, g *Geo) Source {
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
		if *w.Port == 0 {
			v.add("source.port", "%s", fieldReasons["source.port"])
		}
		s.Port = *w.Port
	}
	s.UserAgent = optionalText(v, "source.user_agent", w.UserAgent, MaxUserAgentLen)
	if w.ASN != nil {
		if *w.ASN == 0 {
			v.add("source.asn", "%s", fieldReasons["source.asn"])
		}
		s.ASN = *w.ASN
	}
	if w.Geo != nil {
		if w.Geo.Country != nil {
			g.Country = *w.Geo.Country
			if !isCountry(g.Country) {
				v.add("source.geo.country", "must be an ISO 3166-1 alpha-2 code in upper case")
			}
		}
		g.Lat, g.Lon = w.Geo.Lat, w.Geo.Lon
		coordinate(v, "source.geo.lat", g.Lat, 90)
		coordinate(v, "source.geo.lon", g.Lon, 180)
		// A coordinate of the wrong type was reported already; it is
		// not also missing.
		if !v.failedUnder("source.geo") {
			if (g.Lat == nil) != (g.Lon == nil) {
				v.add("source.geo", "lat and lon must be given together")
			}
			if g.Country == "" && g.Lat == nil && g.Lon == nil {
				v.add("source.geo", "must have a country or coordinates")
			}
		}
		s.Geo = g
	}
	return s
}

func coordinate(v *ValidationError, field string, f *float64, limit float64) {
	if f != nil && (math.IsNaN(*f) || *f < -limit || *f > limit) {
		v.add(field, "%s", fieldReasons[field])
	}
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
		if r >= 0x80 && v.receiving && (unicode.IsControl(r) || IsBidiControl(r)) {
			v.add(field, "must not contain control characters or bidirectional overrides (U+%04X)", r)
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

// FitText returns what a text field of at most max bytes can hold of s,
// for clients that record what others sent them (a user agent, a request
// id, a path): invalid UTF-8 and control characters become '?', and so do
// the bidirectional overrides and isolates, which make a terminal show
// text other than what is stored; the result is cut to max bytes at a
// character boundary. The log refuses control characters in a field, so
// a request that sent them would otherwise go unrecorded.
func FitText(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || IsBidiControl(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// IsBidiControl reports the bidirectional embeddings, overrides and
// isolates (U+202A-U+202E, U+2066-U+2069).
func IsBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069
}

var errNotRFC3339 = errors.New("not an RFC 3339 date-time")

// ParseTime parses an RFC 3339 date-time as the log parses an event's
// time: a fraction of at most nine digits after a '.', an offset from
// -23:59 to +23:59, and the lower-case t and z that RFC 3339 allows.
// Anything else is an error, where time.Parse would take a ',' before the
// fraction, cut a fraction finer than a nanosecond, or move +24:00 to
// another day. Query times use it, so that a time means the same in a
// query as in an event.
func ParseTime(s string) (time.Time, error) { return parseTime(s) }

// parseTime parses an RFC 3339 date-time strictly: time.Parse also takes
// a comma before the fraction and offsets such as +24:00 or +23:60, which
// RFC 3339 does not (and +23:60 was stored as the previous day), and
// refuses the lower-case t and z that RFC 3339 5.6 allows.
func parseTime(s string) (time.Time, error) {
	digits := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 7) || s[7] != '-' || !digits(8, 10) ||
		s[10] != 'T' && s[10] != 't' || !digits(11, 13) || s[13] != ':' || !digits(14, 16) || s[16] != ':' || !digits(17, 19) {
		return time.Time{}, errNotRFC3339
	}
	i := 19
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 || j-i-1 > 9 {
			return time.Time{}, errNotRFC3339
		}
		i = j
	}
	switch zone := s[i:]; {
	case zone == "Z" || zone == "z":
	case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':' && digits(i+1, i+3) && digits(i+4, i+6) &&
		zone[1:3] <= "23" && zone[4:6] <= "59":
	default:
		return time.Time{}, errNotRFC3339
	}
	if s[10] == 't' || s[len(s)-1] == 'z' {
		b := []byte(s)
		b[10] = 'T'
		if b[len(b)-1] == 'z' {
			b[len(b)-1] = 'Z'
		}
		s = string(b)
	}
	return time.Parse(time.RFC3339Nano, s)
}
