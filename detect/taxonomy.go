package detect

import (
	"strconv"
	"strings"
	"time"

	"github.com/accessledger/accessledger/event"
)

// Product is the Sigma logsource product of accessledger's events.
const Product = "accessledger"

// fieldID names a field of the taxonomy. Matchers resolve field names to
// ids when rules are compiled, so that matching an event indexes a switch,
// never a map.
type fieldID uint8

const (
	fNone fieldID = iota
	fID
	fTime
	fReceivedAt
	fService
	fActorID
	fActorType
	fActorSession
	fSourceIP
	fSourcePort
	fUserAgent
	fGeoCountry
	fGeoLat
	fGeoLon
	fASN
	fAction
	fCategory
	fOutcome
	fReason
	fResourceType
	fResourceID
	fMFA
	fRequestID
	fTenant
	fAttribute // attributes.<key>
	// Derived fields (accessledger extensions to the event's paths).
	fSourceNet   // source.network: the /24 (IPv4) or /48 (IPv6) of source.ip
	fTimeHour    // time.hour: hour of day of time, in the configured zone
	fTimeWeekday // time.weekday: ISO weekday of time (1 Monday ... 7 Sunday)
	numFields
)

// valueKind is the type of a field's values.
type valueKind uint8

const (
	kindString valueKind = iota
	kindIP
	kindInt
	kindFloat
	kindBool
	kindTime
)

func (k valueKind) String() string {
	return [...]string{"string", "IP address", "integer", "number", "boolean", "time"}[k]
}

// FieldInfo describes one field of accessledger's Sigma taxonomy.
type FieldInfo struct {
	// Name is the field's dotted path in the event (source.ip).
	Name string
	// Type is string, IP address, integer, number, boolean or time.
	Type string
	// Doc says what the field holds.
	Doc string
}

type fieldSpec struct {
	id   fieldID
	name string
	kind valueKind
	doc  string
}

// taxonomy lists the fields rules may name, in the order of the event
// schema. attributes.<key> is matched by prefix.
var taxonomy = []fieldSpec{
	{fID, "id", kindString, "the submitter's idempotency key"},
	{fTime, "time", kindTime, "when the access happened (event time); match with time-part modifiers (hour, weekday, ...)"},
	{fReceivedAt, "received_at", kindTime, "when the log received the event"},
	{fService, "service", kindString, "the system that was accessed"},
	{fActorID, "actor.id", kindString, "user or service identity"},
	{fActorType, "actor.type", kindString, "user, service or admin"},
	{fActorSession, "actor.session", kindString, "session identifier"},
	{fSourceIP, "source.ip", kindIP, "client IP address, canonical text form"},
	{fSourcePort, "source.port", kindInt, "client port"},
	{fUserAgent, "source.user_agent", kindString, "client user agent"},
	{fGeoCountry, "source.geo.country", kindString, "ISO 3166-1 alpha-2 country code (submitted or enriched)"},
	{fGeoLat, "source.geo.lat", kindFloat, "latitude (submitted or enriched)"},
	{fGeoLon, "source.geo.lon", kindFloat, "longitude (submitted or enriched)"},
	{fASN, "source.asn", kindInt, "autonomous system number (submitted or enriched)"},
	{fAction, "action", kindString, "lower-case verb: login, logout, read, create, update, delete, grant, revoke, ..."},
	{fCategory, "category", kindString, "authentication, authorization, data_access, admin or system"},
	{fOutcome, "outcome", kindString, "success, failure or unknown"},
	{fReason, "reason", kindString, "the outcome's detail (invalid_credentials, unknown_user, ...)"},
	{fResourceType, "resource.type", kindString, "type of the object accessed"},
	{fResourceID, "resource.id", kindString, "identifier of the object accessed"},
	{fMFA, "mfa", kindBool, "whether multi-factor authentication was used"},
	{fRequestID, "request_id", kindString, "request identifier"},
	{fTenant, "tenant", kindString, "tenant"},
	{fSourceNet, "source.network", kindString, "derived: the /24 (IPv4) or /48 (IPv6) network of source.ip, as CIDR text"},
	{fTimeHour, "time.hour", kindInt, "derived: the hour of day (0-23) of time in the configured time zone"},
	{fTimeWeekday, "time.weekday", kindInt, "derived: the ISO weekday (1 Monday ... 7 Sunday) of time in the configured time zone"},
}

const attrPrefix = "attributes."

// Fields returns accessledger's Sigma taxonomy: the field names rules may
// use, which are the event's dotted paths, plus attributes.<key> for any
// attribute.
func Fields() []FieldInfo {
	out := make([]FieldInfo, 0, len(taxonomy)+1)
	for _, f := range taxonomy {
		out = append(out, FieldInfo{Name: f.name, Type: f.kind.String(), Doc: f.doc})
	}
	return append(out, FieldInfo{Name: "attributes.<key>", Type: "string", Doc: "an attribute of the event"})
}

// fieldRef is a resolved field name.
type fieldRef struct {
	id   fieldID
	kind valueKind
	name string // as written
	attr string // the key, for fAttribute
}

// lookupField resolves a field name of the taxonomy.
func lookupField(name string) (fieldRef, bool) {
	if key, ok := strings.CutPrefix(name, attrPrefix); ok {
		if !validAttrKey(key) {
			return fieldRef{}, false
		}
		return fieldRef{id: fAttribute, kind: kindString, name: name, attr: key}, true
	}
	for _, f := range taxonomy {
		if f.name == name {
			return fieldRef{id: f.id, kind: f.kind, name: name}, true
		}
	}
	return fieldRef{}, false
}

func validAttrKey(s string) bool {
	if len(s) == 0 || len(s) > event.MaxAttrKeyLen {
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

// fieldNames lists the taxonomy's names, for error messages.
func fieldNames() string {
	names := make([]string, 0, len(taxonomy)+1)
	for _, f := range taxonomy {
		names = append(names, f.name)
	}
	return strings.Join(append(names, "attributes.<key>"), ", ")
}

// Record is one event as the engine sees it: the event, where it is in the
// log and when the log received it. A Record caches lower-cased field
// values for case-insensitive matching; it is used by one goroutine.
type Record struct {
	// Index is the event's index in the log.
	Index uint64
	// ReceivedAt is when the log received the event; zero if unknown.
	ReceivedAt time.Time
	Event      *event.Event

	lower   [4]loweredField // lower-cased values, the first four fields asked
	nlower  uint8
	ipText  string    // source.ip as text, once computed
	local   time.Time // Event.Time in localIn, once computed
	localIn *time.Location
	loc     *time.Location // the engine's time zone, for derived fields
}

// localTime returns t (the value of field f) in loc, caching the event
// time's conversion.
func (r *Record) localTime(f fieldRef, t time.Time, loc *time.Location) time.Time {
	if f.id != fTime {
		return t.In(loc)
	}
	if r.localIn != loc {
		r.local, r.localIn = t.In(loc), loc
	}
	return r.local
}

// str returns a string field's value and whether the event has it. IP
// addresses are returned in canonical text form; numbers, booleans and
// times as decimal or RFC 3339 text (for group keys and summaries).
func (r *Record) str(f fieldRef) (string, bool) {
	e := r.Event
	switch f.id {
	case fID:
		return e.ID, e.ID != ""
	case fTime:
		return e.Time.UTC().Format(time.RFC3339Nano), true
	case fReceivedAt:
		if r.ReceivedAt.IsZero() {
			return "", false
		}
		return r.ReceivedAt.UTC().Format(time.RFC3339Nano), true
	case fService:
		return e.Service, true
	case fActorID:
		return e.Actor.ID, true
	case fActorType:
		return e.Actor.Type, e.Actor.Type != ""
	case fActorSession:
		return e.Actor.Session, e.Actor.Session != ""
	case fSourceIP:
		if !e.Source.IP.IsValid() {
			return "", false
		}
		if r.ipText == "" {
			r.ipText = e.Source.IP.String()
		}
		return r.ipText, true
	case fSourcePort:
		return strconv.Itoa(int(e.Source.Port)), e.Source.Port != 0
	case fUserAgent:
		return e.Source.UserAgent, e.Source.UserAgent != ""
	case fGeoCountry:
		if e.Source.Geo == nil {
			return "", false
		}
		return e.Source.Geo.Country, e.Source.Geo.Country != ""
	case fGeoLat:
		if e.Source.Geo == nil || e.Source.Geo.Lat == nil {
			return "", false
		}
		return strconv.FormatFloat(*e.Source.Geo.Lat, 'f', -1, 64), true
	case fGeoLon:
		if e.Source.Geo == nil || e.Source.Geo.Lon == nil {
			return "", false
		}
		return strconv.FormatFloat(*e.Source.Geo.Lon, 'f', -1, 64), true
	case fASN:
		return strconv.FormatUint(uint64(e.Source.ASN), 10), e.Source.ASN != 0
	case fAction:
		return e.Action, true
	case fCategory:
		return e.Category, true
	case fOutcome:
		return e.Outcome, true
	case fReason:
		return e.Reason, e.Reason != ""
	case fResourceType:
		if e.Resource == nil {
			return "", false
		}
		return e.Resource.Type, e.Resource.Type != ""
	case fResourceID:
		if e.Resource == nil {
			return "", false
		}
		return e.Resource.ID, e.Resource.ID != ""
	case fMFA:
		if e.MFA == nil {
			return "", false
		}
		return strconv.FormatBool(*e.MFA), true
	case fRequestID:
		return e.RequestID, e.RequestID != ""
	case fTenant:
		return e.Tenant, e.Tenant != ""
	case fAttribute:
		v, ok := e.Attributes[f.attr]
		return v, ok
	case fSourceNet:
		if !e.Source.IP.IsValid() {
			return "", false
		}
		bits := 24
		if e.Source.IP.Is6() {
			bits = 48
		}
		p, err := e.Source.IP.Prefix(bits)
		if err != nil {
			return "", false
		}
		return p.String(), true
	case fTimeHour, fTimeWeekday:
		n, _ := r.num(f)
		return strconv.Itoa(int(n)), true
	}
	return "", false
}

// zone returns the time zone of derived time fields.
func (r *Record) zone() *time.Location {
	if r.loc == nil {
		return time.UTC
	}
	return r.loc
}

type loweredField struct {
	id fieldID
	v  string
}

// lowerStr returns a string field's value lower-cased, computing it once
// per record for the first four fields asked (attributes are not cached).
func (r *Record) lowerStr(f fieldRef) (string, bool) {
	if f.id != fAttribute {
		for i := uint8(0); i < r.nlower; i++ {
			if r.lower[i].id == f.id {
				return r.lower[i].v, true
			}
		}
	}
	v, ok := r.str(f)
	if !ok {
		return "", false
	}
	lv := toLower(v)
	if f.id != fAttribute && int(r.nlower) < len(r.lower) {
		r.lower[r.nlower] = loweredField{f.id, lv}
		r.nlower++
	}
	return lv, true
}

// num returns a numeric field's value.
func (r *Record) num(f fieldRef) (float64, bool) {
	e := r.Event
	switch f.id {
	case fSourcePort:
		return float64(e.Source.Port), e.Source.Port != 0
	case fASN:
		return float64(e.Source.ASN), e.Source.ASN != 0
	case fGeoLat:
		if e.Source.Geo == nil || e.Source.Geo.Lat == nil {
			return 0, false
		}
		return *e.Source.Geo.Lat, true
	case fGeoLon:
		if e.Source.Geo == nil || e.Source.Geo.Lon == nil {
			return 0, false
		}
		return *e.Source.Geo.Lon, true
	case fTimeHour:
		return float64(r.localTime(fieldRef{id: fTime}, e.Time, r.zone()).Hour()), true
	case fTimeWeekday:
		return float64(timePartOf(r.localTime(fieldRef{id: fTime}, e.Time, r.zone()), modWeekday)), true
	}
	return 0, false
}

// present reports whether the event has the field.
func (r *Record) present(f fieldRef) bool {
	switch f.kind {
	case kindInt, kindFloat:
		_, ok := r.num(f)
		return ok
	case kindTime:
		if f.id == fReceivedAt {
			return !r.ReceivedAt.IsZero()
		}
		return true
	}
	_, ok := r.str(f)
	return ok
}

// timeOf returns a time field's value.
func (r *Record) timeOf(f fieldRef) (time.Time, bool) {
	if f.id == fReceivedAt {
		return r.ReceivedAt, !r.ReceivedAt.IsZero()
	}
	return r.Event.Time, true
}

// toLower lower-cases s, without allocating when it already is.
func toLower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
