package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid event, as a JSON object to mutate.
func minimal() map[string]any {
	return map[string]any{
		"time":     "2026-01-02T15:04:05Z",
		"service":  "billing",
		"actor":    map[string]any{"id": "alice"},
		"source":   map[string]any{"ip": "192.0.2.1"},
		"action":   "login",
		"category": "authentication",
		"outcome":  "success",
	}
}

// with returns minimal() with the value at a dotted path set (or deleted
// if v is the special value del).
func with(path string, v any) []byte {
	m := minimal()
	set(m, path, v)
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

type deleted struct{}

var del = deleted{}

func set(m map[string]any, path string, v any) {
	key, rest, nested := strings.Cut(path, ".")
	if nested {
		sub, ok := m[key].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[key] = sub
		}
		set(sub, rest, v)
		return
	}
	if v == del {
		delete(m, key)
		return
	}
	m[key] = v
}

// raw is JSON text inserted verbatim, for numbers and types json.Marshal
// would not produce from Go values.
type raw string

func (r raw) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func attrs(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}

func fieldsOf(err error) []string {
	var v *ValidationError
	if !errors.As(err, &v) {
		return nil
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field)
	}
	return out
}

var now = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)

func TestParseRejects(t *testing.T) {
	valid := string(with("service", "billing"))
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		input  []byte
		opts   ParseOptions
		fields []string // exactly the FieldError.Field values wanted
	}{
		// Missing required fields.
		{"MissingTime", with("time", del), ParseOptions{}, []string{"time"}},
		{"MissingService", with("service", del), ParseOptions{}, []string{"service"}},
		{"MissingActor", with("actor", del), ParseOptions{}, []string{"actor"}},
		{"MissingActorID", with("actor.id", del), ParseOptions{}, []string{"actor.id"}},
		{"MissingSource", with("source", del), ParseOptions{}, []string{"source"}},
		{"MissingSourceIP", with("source.ip", del), ParseOptions{}, []string{"source.ip"}},
		{"MissingAction", with("action", del), ParseOptions{}, []string{"action"}},
		{"MissingCategory", with("category", del), ParseOptions{}, []string{"category"}},
		{"MissingOutcome", with("outcome", del), ParseOptions{}, []string{"outcome"}},
		{"NullTime", with("time", nil), ParseOptions{}, []string{"time"}},
		{"NullActorID", with("actor.id", nil), ParseOptions{}, []string{"actor.id"}},
		{"EmptyService", with("service", ""), ParseOptions{}, []string{"service"}},
		{"EmptyActorID", with("actor.id", ""), ParseOptions{}, []string{"actor.id"}},
		{"TwoProblems", []byte(strings.Replace(string(with("service", del)), `"192.0.2.1"`, `"nope"`, 1)), ParseOptions{}, []string{"service", "source.ip"}},

		// Wrong types.
		{"TimeNumber", with("time", 5), ParseOptions{}, []string{"time"}},
		{"ServiceNumber", with("service", 5), ParseOptions{}, []string{"service"}},
		{"ActorString", with("actor", "alice"), ParseOptions{}, []string{"actor"}},
		{"ActorIDNumber", with("actor.id", 5), ParseOptions{}, []string{"actor.id"}},
		{"SourceArray", with("source", []int{1}), ParseOptions{}, []string{"source"}},
		{"SourceIPNumber", with("source.ip", 1234), ParseOptions{}, []string{"source.ip"}},
		{"PortString", with("source.port", "https"), ParseOptions{}, []string{"source.port"}},
		{"PortNumericString", with("source.port", "443"), ParseOptions{}, []string{"source.port"}},
		{"PortBool", with("source.port", true), ParseOptions{}, []string{"source.port"}},
		{"LatBool", with("source.geo.lat", true), ParseOptions{}, []string{"source.geo.lat"}},
		{"MFAString", with("mfa", "yes"), ParseOptions{}, []string{"mfa"}},
		{"ResourceTypeNumber", with("resource.type", 5), ParseOptions{}, []string{"resource.type"}},
		{"AttributesArray", with("attributes", []string{"a"}), ParseOptions{}, []string{"attributes"}},
		{"AttributeValueNumber", with("attributes", map[string]any{"k": 5}), ParseOptions{}, []string{"attributes.k"}},
		// null was stored as "": an attribute is a string.
		{"AttributeValueNull", with("attributes", map[string]any{"k": nil, "ok": "v"}), ParseOptions{}, []string{"attributes.k"}},

		// Unknown fields, reported by their JSON path.
		{"UnknownField", with("user", "bob"), ParseOptions{}, []string{"user"}},
		{"UnknownActorField", with("actor.name", "bob"), ParseOptions{}, []string{"actor.name"}},
		{"UnknownGeoField", with("source.geo.alt", 3), ParseOptions{}, []string{"source.geo.alt"}},
		{"KeyInWrongCase", with("Service", "other"), ParseOptions{}, []string{"Service"}},

		// Source address and port.
		{"IPNotAnAddress", with("source.ip", "192.0.2"), ParseOptions{}, []string{"source.ip"}},
		{"IPHostname", with("source.ip", "example.com"), ParseOptions{}, []string{"source.ip"}},
		{"IPEmpty", with("source.ip", ""), ParseOptions{}, []string{"source.ip"}},
		{"IPWithPort", with("source.ip", "192.0.2.1:80"), ParseOptions{}, []string{"source.ip"}},
		{"IPv6Zone", with("source.ip", "fe80::1%eth0"), ParseOptions{}, []string{"source.ip"}},
		{"Port0", with("source.port", 0), ParseOptions{}, []string{"source.port"}},
		{"Port65536", with("source.port", 65536), ParseOptions{}, []string{"source.port"}},
		{"PortFraction", with("source.port", raw("80.5")), ParseOptions{}, []string{"source.port"}},
		{"PortExponent", with("source.port", raw("8e1")), ParseOptions{}, []string{"source.port"}},
		{"PortNegative", with("source.port", -1), ParseOptions{}, []string{"source.port"}},
		{"ASN0", with("source.asn", 0), ParseOptions{}, []string{"source.asn"}},
		{"ASNTooLarge", with("source.asn", int64(1)<<32), ParseOptions{}, []string{"source.asn"}},
		{"GeoCountryLowerCase", with("source.geo.country", "de"), ParseOptions{}, []string{"source.geo.country"}},
		{"GeoCountryThreeLetters", with("source.geo.country", "DEU"), ParseOptions{}, []string{"source.geo.country"}},
		// A bad coordinate is one problem, not also a missing one.
		{"GeoLatOutOfRange", with("source.geo", map[string]any{"lat": 90.5, "lon": 0}), ParseOptions{}, []string{"source.geo.lat"}},
		{"GeoLatWithoutLon", with("source.geo", map[string]any{"lat": 1}), ParseOptions{}, []string{"source.geo"}},
		{"GeoEmpty", with("source.geo", map[string]any{}), ParseOptions{}, []string{"source.geo"}},

		// Enumerations and the action verb.
		{"BadCategory", with("category", "login"), ParseOptions{}, []string{"category"}},
		{"CategoryWrongCase", with("category", "Authentication"), ParseOptions{}, []string{"category"}},
		{"BadOutcome", with("outcome", "ok"), ParseOptions{}, []string{"outcome"}},
		{"BadActorType", with("actor.type", "robot"), ParseOptions{}, []string{"actor.type"}},
		{"ActionUpperCase", with("action", "Login"), ParseOptions{}, []string{"action"}},
		{"ActionStartsWithDigit", with("action", "2fa"), ParseOptions{}, []string{"action"}},
		{"ActionWithDash", with("action", "log-in"), ParseOptions{}, []string{"action"}},
		{"ActionEmpty", with("action", ""), ParseOptions{}, []string{"action"}},
		{"ActionTooLong", with("action", "a"+strings.Repeat("b", MaxActionLen)), ParseOptions{}, []string{"action"}},

		// Lengths.
		{"IDTooLong", with("id", long(MaxIDLen+1)), ParseOptions{}, []string{"id"}},
		{"ServiceTooLong", with("service", long(MaxServiceLen+1)), ParseOptions{}, []string{"service"}},
		{"ActorIDTooLong", with("actor.id", long(MaxActorIDLen+1)), ParseOptions{}, []string{"actor.id"}},
		{"SessionTooLong", with("actor.session", long(MaxSessionLen+1)), ParseOptions{}, []string{"actor.session"}},
		{"ReasonTooLong", with("reason", long(MaxReasonLen+1)), ParseOptions{}, []string{"reason"}},
		{"UserAgentTooLong", with("source.user_agent", long(MaxUserAgentLen+1)), ParseOptions{}, []string{"source.user_agent"}},
		{"ResourceIDTooLong", with("resource.id", long(MaxResourceLen+1)), ParseOptions{}, []string{"resource.id"}},
		{"RequestIDTooLong", with("request_id", long(MaxRequestIDLen+1)), ParseOptions{}, []string{"request_id"}},
		{"TenantTooLong", with("tenant", long(MaxTenantLen+1)), ParseOptions{}, []string{"tenant"}},
		{"AttributeValueTooLong", with("attributes", map[string]any{"k": long(MaxAttrValueLen + 1)}), ParseOptions{}, []string{"attributes.k"}},
		{"MultiByteServiceTooLong", with("service", strings.Repeat("é", MaxServiceLen/2+1)), ParseOptions{}, []string{"service"}},

		// Control characters and tokens.
		{"ServiceNewline", with("service", "bill\ning"), ParseOptions{}, []string{"service"}},
		{"ActorIDNUL", with("actor.id", "al\x00ice"), ParseOptions{}, []string{"actor.id"}},
		{"ReasonBell", with("reason", "\a"), ParseOptions{}, []string{"reason"}},
		{"UserAgentDEL", with("source.user_agent", "curl\x7f"), ParseOptions{}, []string{"source.user_agent"}},
		{"AttributeValueTab", with("attributes", map[string]any{"k": "a\tb"}), ParseOptions{}, []string{"attributes.k"}},
		{"IDWithSpace", with("id", "evt 1"), ParseOptions{}, []string{"id"}},
		{"IDNonASCII", with("id", "évt"), ParseOptions{}, []string{"id"}},
		{"IDEmpty", with("id", ""), ParseOptions{}, []string{"id"}},

		// Attributes.
		{"AttributeKeyWithSpace", with("attributes", map[string]any{"a b": "v"}), ParseOptions{}, []string{"attributes"}},
		{"AttributeKeyEmpty", with("attributes", map[string]any{"": "v"}), ParseOptions{}, []string{"attributes"}},
		{"AttributeKeyNonASCII", with("attributes", map[string]any{"clé": "v"}), ParseOptions{}, []string{"attributes"}},
		{"AttributeKeyTooLong", with("attributes", map[string]any{long(MaxAttrKeyLen + 1): "v"}), ParseOptions{}, []string{"attributes"}},
		{"TooManyAttributes", with("attributes", attrs(MaxAttributes+1)), ParseOptions{}, []string{"attributes"}},

		// Resource.
		{"ResourceEmpty", with("resource", map[string]any{}), ParseOptions{}, []string{"resource"}},

		// Time.
		{"TimeNotRFC3339", with("time", "2026-01-02 15:04:05"), ParseOptions{}, []string{"time"}},
		{"TimeWithoutZone", with("time", "2026-01-02T15:04:05"), ParseOptions{}, []string{"time"}},
		{"TimeUnixSeconds", with("time", "1767366245"), ParseOptions{}, []string{"time"}},
		{"TimeBefore1970", with("time", "1969-12-31T23:59:59Z"), ParseOptions{}, []string{"time"}},
		{"TimeFuture", with("time", now.Add(DefaultMaxFuture+time.Second).Format(time.RFC3339)), ParseOptions{Now: now}, []string{"time"}},
		{"TimeFutureOffset", with("time", now.Add(25*time.Hour).In(time.FixedZone("", -5*3600)).Format(time.RFC3339)), ParseOptions{Now: now}, []string{"time"}},
		{"TimeFutureCustomSkew", with("time", now.Add(2*time.Hour).Format(time.RFC3339)), ParseOptions{Now: now, MaxFuture: time.Hour}, []string{"time"}},
		// A year that UTC turns into five digits cannot be encoded in
		// TimeFormat and must be refused.
		{"TimeYear10000InUTC", with("time", "9999-12-31T23:00:00-02:00"), ParseOptions{}, []string{"time"}},

		// Whole-document problems.
		{"Empty", []byte(""), ParseOptions{}, []string{""}},
		{"Whitespace", []byte(" \n"), ParseOptions{}, []string{""}},
		{"Truncated", []byte(valid[:len(valid)-1]), ParseOptions{}, []string{""}},
		{"MalformedJSON", []byte(`{"time":}`), ParseOptions{}, []string{""}},
		{"TrailingObject", []byte(valid + ` {}`), ParseOptions{}, []string{""}},
		{"TrailingGarbage", []byte(valid + `x`), ParseOptions{}, []string{""}},
		{"TrailingComma", []byte(valid + `,`), ParseOptions{}, []string{""}},
		{"Array", []byte(`[` + valid + `]`), ParseOptions{}, []string{""}},
		{"String", []byte(`"event"`), ParseOptions{}, []string{""}},
		{"Number", []byte(`42`), ParseOptions{}, []string{""}},
		{"True", []byte(`true`), ParseOptions{}, []string{""}},
		// null decodes into an object as nothing: it must not pass as an
		// event that lacks every field.
		{"Null", []byte(`null`), ParseOptions{}, []string{""}},
		{"NullInWhitespace", []byte(" null\n"), ParseOptions{}, []string{""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.input, tc.opts)
			if err == nil {
				t.Fatalf("Parse(%s) = %s, want an error on %q", tc.input, e.Canonical(), tc.fields)
			}
			var v *ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("Parse(%s) = %T %v, want a *ValidationError", tc.input, err, err)
			}
			if got := fieldsOf(err); !slices.Equal(got, tc.fields) {
				t.Errorf("Parse(%.200s) fields = %q, want %q (%v)", tc.input, got, tc.fields, err)
			}
			for _, f := range v.Fields {
				if f.Reason == "" {
					t.Errorf("FieldError %q has no reason", f.Field)
				}
			}
		})
	}
}

// edits returns minimal() with each path set (or deleted) in turn.
func edits(kv ...any) []byte {
	m := minimal()
	for i := 0; i < len(kv); i += 2 {
		set(m, kv[i].(string), kv[i+1])
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestParseReportsEveryField checks that values of the wrong type do not
// stop validation: every offending field is reported, type errors and
// semantic errors together, in the order of the schema.
func TestParseReportsEveryField(t *testing.T) {
	tests := []struct {
		name    string
		input   []byte
		fields  []string
		reasons map[string]string // field: a substring its reason must have
	}{
		{"EmptyServiceAndMFAString", edits("service", "", "mfa", "yes"), []string{"service", "mfa"},
			map[string]string{"service": "empty", "mfa": "boolean"}},
		{"SeveralTypeErrors", edits("service", 5, "source.port", "443", "mfa", "yes", "attributes", map[string]any{"a": 1, "b": true, "c": "ok"}),
			[]string{"service", "source.port", "mfa", "attributes.a", "attributes.b"},
			map[string]string{"service": "string", "source.port": "integer", "attributes.a": "string"}},
		{"TypeUnknownAndMissing", edits("actor", "alice", "user", "bob", "outcome", del), []string{"actor", "outcome", "user"},
			map[string]string{"actor": "object", "outcome": "required", "user": "unknown"}},
		{"TypeAndBadValue", edits("time", 5, "source.ip", "nope", "category", "login"), []string{"time", "source.ip", "category"}, nil},
		{"NestedTypeAndValue", edits("source.geo", map[string]any{"country": "de", "lat": "1", "lon": 2}, "resource.type", 5, "resource.id", "r1"),
			[]string{"source.geo.country", "source.geo.lat", "resource.type"}, nil},
		{"SchemaOrderNotDocumentOrder", []byte(`{"tenant":7,"outcome":"ok","time":"2026-01-02T15:04:05Z","service":"s","actor":{"id":1},"source":{"ip":"192.0.2.1","port":"x"},"action":"login","category":"authentication"}`),
			[]string{"actor.id", "source.port", "outcome", "tenant"}, nil},
		{"WrongCaseName", edits("service", del, "Service", "billing"), []string{"Service"},
			map[string]string{"Service": `did you mean "service"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.input, ParseOptions{})
			var v *ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("Parse(%s) = %v, want a *ValidationError", tc.input, err)
			}
			if got := fieldsOf(err); !slices.Equal(got, tc.fields) {
				t.Errorf("Parse(%s) fields = %q, want %q (%v)", tc.input, got, tc.fields, err)
			}
			for _, f := range v.Fields {
				if want, ok := tc.reasons[f.Field]; ok && !strings.Contains(f.Reason, want) {
					t.Errorf("Parse(%s) reason for %s = %q, want it to say %q", tc.input, f.Field, f.Reason, want)
				}
			}
		})
	}
}

// TestParseAccepts checks the boundaries just inside every limit.
func TestParseAccepts(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		input []byte
		opts  ParseOptions
	}{
		{"Minimal", with("service", "billing"), ParseOptions{}},
		{"Port1", with("source.port", 1), ParseOptions{}},
		{"Port65535", with("source.port", 65535), ParseOptions{}},
		{"ASNMax", with("source.asn", uint32(1<<32-1)), ParseOptions{}},
		{"IDMaxLen", with("id", long(MaxIDLen)), ParseOptions{}},
		{"ServiceMaxLen", with("service", long(MaxServiceLen)), ParseOptions{}},
		{"ActorIDMaxLen", with("actor.id", long(MaxActorIDLen)), ParseOptions{}},
		{"ActionMaxLen", with("action", "a"+strings.Repeat("b", MaxActionLen-1)), ParseOptions{}},
		{"UserAgentMaxLen", with("source.user_agent", long(MaxUserAgentLen)), ParseOptions{}},
		{"MaxAttributes", with("attributes", attrs(MaxAttributes)), ParseOptions{}},
		{"AttributeKeyMaxLen", with("attributes", map[string]any{long(MaxAttrKeyLen): "v"}), ParseOptions{}},
		{"AttributeKeyPunctuation", with("attributes", map[string]any{"a.B-c_9": "v"}), ParseOptions{}},
		{"EmptyAttributes", with("attributes", map[string]any{}), ParseOptions{}},
		{"TimeJustInFuture", with("time", now.Add(DefaultMaxFuture).Format(time.RFC3339)), ParseOptions{Now: now}},
		{"TimeFutureWithoutNow", with("time", "2100-01-01T00:00:00Z"), ParseOptions{}},
		{"TimeEpoch", with("time", "1970-01-01T00:00:00Z"), ParseOptions{}},
		{"TimeYear9999", with("time", "9999-12-31T23:59:59.999999999Z"), ParseOptions{}},
		{"NonASCIIText", with("service", "café ☕"), ParseOptions{}},
		{"NullOptionalFields", with("reason", nil), ParseOptions{}},
		{"GeoCountryOnly", with("source.geo.country", "DE"), ParseOptions{}},
		{"GeoExtremes", with("source.geo", map[string]any{"lat": -90, "lon": 180}), ParseOptions{}},
		{"TrailingWhitespace", append(with("service", "billing"), " \n\t"...), ParseOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.input, tc.opts); err != nil {
				t.Errorf("Parse(%.200s) = %v, want nil", tc.input, err)
			}
		})
	}
}

const fullInput = `{
	"attributes": {"zeta": "last", "alpha": "first", "m.id": "x"},
	"tenant": "acme",
	"request_id": "req-7",
	"mfa": true,
	"resource": {"id": "inv-42", "type": "invoice"},
	"reason": "password ok",
	"outcome": "success",
	"category": "authentication",
	"action": "login",
	"source": {"asn": 3320, "geo": {"lon": 13.4, "lat": 52.52, "country": "DE"}, "user_agent": "curl/8.5", "port": 443, "ip": "::ffff:192.0.2.7"},
	"actor": {"session": "s-1", "type": "user", "id": "alice@example.com"},
	"service": "billing",
	"time": "2026-01-02T17:04:05.123+02:00",
	"id": "evt-1"
}`

const fullCanonical = `{"id":"evt-1","time":"2026-01-02T15:04:05.123000000Z","service":"billing",` +
	`"actor":{"id":"alice@example.com","type":"user","session":"s-1"},` +
	`"source":{"ip":"192.0.2.7","port":443,"user_agent":"curl/8.5","geo":{"country":"DE","lat":52.52,"lon":13.4},"asn":3320},` +
	`"action":"login","category":"authentication","outcome":"success","reason":"password ok",` +
	`"resource":{"type":"invoice","id":"inv-42"},"mfa":true,"request_id":"req-7","tenant":"acme",` +
	`"attributes":{"alpha":"first","m.id":"x","zeta":"last"}}`

func TestCanonicalFullEvent(t *testing.T) {
	e, err := Parse([]byte(fullInput), ParseOptions{Now: now})
	if err != nil {
		t.Fatalf("Parse(full event) = %v", err)
	}
	if got := string(e.Canonical()); got != fullCanonical {
		t.Errorf("Canonical() =\n%s\nwant\n%s", got, fullCanonical)
	}
	if loc := e.Time.Location(); loc != time.UTC {
		t.Errorf("Parse().Time location = %v, want UTC", loc)
	}
	if want := netip.MustParseAddr("192.0.2.7"); e.Source.IP != want {
		t.Errorf("Parse().Source.IP = %v, want %v", e.Source.IP, want)
	}
	checkRoundTrip(t, e.Canonical())

	// MarshalJSON is the canonical encoding.
	if got, err := e.MarshalJSON(); err != nil || string(got) != fullCanonical {
		t.Errorf("MarshalJSON() = %s, %v; want the canonical encoding", got, err)
	}
}

// checkRoundTrip asserts that canonical bytes are valid JSON, parse back
// to an event with byte-identical canonical form, and decode with plain
// encoding/json into the same Event.
func checkRoundTrip(t *testing.T, c []byte) {
	t.Helper()
	if !json.Valid(c) {
		t.Fatalf("Canonical() = %s is not valid JSON", c)
	}
	e, err := Parse(c, ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(Canonical()) = %v for %s", err, c)
	}
	if again := e.Canonical(); !bytes.Equal(again, c) {
		t.Fatalf("Parse(Canonical()).Canonical() =\n%s\nwant\n%s", again, c)
	}
	var plain Event
	if err := json.Unmarshal(c, &plain); err != nil {
		t.Fatalf("json.Unmarshal(Canonical()) = %v", err)
	}
	if !plain.Time.Equal(e.Time) {
		t.Errorf("json.Unmarshal(Canonical()).Time = %v, want %v", plain.Time, e.Time)
	}
	plain.Time = e.Time
	if !reflect.DeepEqual(&plain, e) {
		t.Errorf("json.Unmarshal(Canonical()) = %+v, want %+v", plain, *e)
	}
	if again := plain.Canonical(); !bytes.Equal(again, c) {
		t.Errorf("json.Unmarshal(Canonical()).Canonical() =\n%s\nwant\n%s", again, c)
	}
}

func TestCanonicalNormalises(t *testing.T) {
	tests := []struct {
		name  string
		input []byte
		want  string // a fragment of the canonical encoding
	}{
		{"TimeUTC", with("time", "2026-01-02T15:04:05Z"), `"time":"2026-01-02T15:04:05.000000000Z"`},
		{"TimeOffset", with("time", "2026-01-02T17:04:05+02:00"), `"time":"2026-01-02T15:04:05.000000000Z"`},
		{"TimeNegativeOffsetNextDay", with("time", "2026-01-01T23:30:00-01:00"), `"time":"2026-01-02T00:30:00.000000000Z"`},
		{"TimeNanoseconds", with("time", "2026-01-02T15:04:05.123456789Z"), `"time":"2026-01-02T15:04:05.123456789Z"`},
		{"TimeFractionPadded", with("time", "2026-01-02T15:04:05.5+00:00"), `"time":"2026-01-02T15:04:05.500000000Z"`},
		{"IPv4", with("source.ip", "192.0.2.1"), `"source":{"ip":"192.0.2.1"}`},
		{"IPv4Mapped", with("source.ip", "::ffff:1.2.3.4"), `"source":{"ip":"1.2.3.4"}`},
		{"IPv4MappedHex", with("source.ip", "::ffff:0102:0304"), `"source":{"ip":"1.2.3.4"}`},
		{"IPv6Compressed", with("source.ip", "2001:DB8:0:0:0:0:0:1"), `"source":{"ip":"2001:db8::1"}`},
		{"IPv6LeadingZeros", with("source.ip", "2001:0db8:0000:0000:0001:0000:0000:0001"), `"source":{"ip":"2001:db8::1:0:0:1"}`},
		{"IPv6Loopback", with("source.ip", "0:0:0:0:0:0:0:1"), `"source":{"ip":"::1"}`},
		{"AttributesSorted", with("attributes", map[string]any{"b": "2", "a": "1", "B": "3", "a.b": "4"}), `"attributes":{"B":"3","a":"1","a.b":"4","b":"2"}`},
		{"EmptyAttributesOmitted", with("attributes", map[string]any{}), `"outcome":"success"}`},
		{"NullOptionalOmitted", with("reason", nil), `"outcome":"success"}`},
		{"MFAFalseKept", with("mfa", false), `"mfa":false}`},
		{"ResourceIDOnly", with("resource", map[string]any{"id": "r"}), `"resource":{"id":"r"}`},
		// -0 is 0: JavaScript writes 0 where Python writes -0.0, and a
		// retry through another client was a 409 rather than a duplicate.
		{"GeoCoordinatesOnly", with("source.geo", map[string]any{"lat": raw("1.50"), "lon": raw("-0.0")}), `"geo":{"lat":1.5,"lon":0}`},
		{"GeoNegativeZero", with("source.geo", map[string]any{"lat": raw("-0"), "lon": raw("-0e5")}), `"geo":{"lat":0,"lon":0}`},
		{"GeoExponent", with("source.geo", map[string]any{"lat": raw("1e1"), "lon": raw("1E-7")}), `"geo":{"lat":10,"lon":0.0000001}`},
		{"Escapes", with("reason", "a \"quoted\" \\ path / é \u2028 \u2029"), `"reason":"a \"quoted\" \\ path / é \u2028 \u2029"`},
		{"HTMLNotEscaped", with("reason", "<b>&</b>"), `"reason":"<b>&</b>"`},
		{"IDWithQuote", with("id", `a"b\c`), `{"id":"a\"b\\c","time"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.input, ParseOptions{})
			if err != nil {
				t.Fatalf("Parse(%s) = %v", tc.input, err)
			}
			c := e.Canonical()
			if !bytes.Contains(c, []byte(tc.want)) {
				t.Errorf("Canonical() = %s, want it to contain %s", c, tc.want)
			}
			checkRoundTrip(t, c)
		})
	}
}

// TestNegativeZeroCanonical: an event with a coordinate of -0 also has
// the encoding versions before -0 was written 0 gave it, for the
// deduplication of a resubmission of an event they stored; others have
// none.
func TestNegativeZeroCanonical(t *testing.T) {
	e, err := Parse(with("source.geo", map[string]any{"lat": raw("51.5"), "lon": raw("-0.0")}), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, l := e.Canonical(), e.NegativeZeroCanonical(); !bytes.Contains(c, []byte(`"lon":0}`)) || !bytes.Equal(l, bytes.Replace(c, []byte(`"lon":0}`), []byte(`"lon":-0}`), 1)) {
		t.Errorf("Canonical() = %s, NegativeZeroCanonical() = %s: want lon 0 and -0, the rest the same", c, l)
	}
	for _, geo := range []map[string]any{{"lat": raw("0"), "lon": raw("1")}, {"country": "FR"}} {
		e, err := Parse(with("source.geo", geo), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l := e.NegativeZeroCanonical(); l != nil {
			t.Errorf("NegativeZeroCanonical() of %v = %s, want nil", geo, l)
		}
	}
}

// TestCanonicalIgnoresInputForm checks that key order, whitespace, string
// escapes and number spelling do not change the canonical bytes.
func TestCanonicalIgnoresInputForm(t *testing.T) {
	a := `{"time":"2026-01-02T15:04:05Z","service":"billing","actor":{"id":"alice"},"source":{"ip":"192.0.2.1","port":443},"action":"login","category":"authentication","outcome":"success","attributes":{"x":"1","y":"2"}}`
	b := "{ \"outcome\" : \"success\",\n\"category\":\"authentication\", \"action\":\"\\u006cogin\",\n" +
		"\"source\":{\"port\":443,\"ip\":\"192.0.2.1\"}, \"attributes\":{\"y\":\"2\",\"x\":\"1\"},\n" +
		"\"actor\":{\"id\":\"alice\"},\"service\":\"bill\\u0069ng\",\"time\":\"2026-01-02T16:04:05+01:00\" }"
	ea, err := Parse([]byte(a), ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(a) = %v", err)
	}
	eb, err := Parse([]byte(b), ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(b) = %v", err)
	}
	if ca, cb := ea.Canonical(), eb.Canonical(); !bytes.Equal(ca, cb) {
		t.Errorf("Canonical() differs for equivalent inputs:\n%s\n%s", ca, cb)
	}
}

func TestLeafRoundTrip(t *testing.T) {
	e, err := Parse([]byte(fullInput), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := e.Canonical()
	received := time.Date(2026, 1, 2, 16, 0, 0, 1, time.FixedZone("", 3600))
	for _, kind := range []Kind{KindEvent, KindAlert, KindResponse} {
		t.Run(string(kind), func(t *testing.T) {
			leaf, err := EncodeLeaf(kind, received, body)
			if err != nil {
				t.Fatalf("EncodeLeaf(%s) = %v", kind, err)
			}
			want := `{"kind":"` + string(kind) + `","received_at":"2026-01-02T15:00:00.000000001Z","body":` + string(body) + `}`
			if string(leaf) != want {
				t.Errorf("EncodeLeaf(%s) = %s, want %s", kind, leaf, want)
			}
			if !json.Valid(leaf) {
				t.Errorf("EncodeLeaf(%s) = %s is not valid JSON", kind, leaf)
			}
			l, err := DecodeLeaf(leaf)
			if err != nil {
				t.Fatalf("DecodeLeaf(%s) = %v", leaf, err)
			}
			if l.Kind != kind || !l.ReceivedAt.Equal(received) || !bytes.Equal(l.Body, body) {
				t.Errorf("DecodeLeaf() = {%s %v %s}, want {%s %v %s}", l.Kind, l.ReceivedAt, l.Body, kind, received, body)
			}
		})
	}
}

func TestEncodeLeafSizeLimit(t *testing.T) {
	received := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	empty, err := EncodeLeaf(KindEvent, received, []byte(`""`))
	if err != nil {
		t.Fatal(err)
	}
	overhead := len(empty) - 2
	body := func(n int) []byte { return []byte(`"` + strings.Repeat("a", n-2) + `"`) }

	leaf, err := EncodeLeaf(KindEvent, received, body(MaxEntrySize-overhead))
	if err != nil || len(leaf) != MaxEntrySize {
		t.Errorf("EncodeLeaf(body making %d bytes) = %d bytes, %v; want %d, nil", MaxEntrySize, len(leaf), err, MaxEntrySize)
	}
	if _, err := DecodeLeaf(leaf); err != nil {
		t.Errorf("DecodeLeaf(largest leaf) = %v", err)
	}
	for _, n := range []int{MaxEntrySize - overhead + 1, 70000} {
		leaf, err := EncodeLeaf(KindEvent, received, body(n))
		if !errors.Is(err, ErrEntryTooLarge) || leaf != nil {
			t.Errorf("EncodeLeaf(%d-byte body) = %d bytes, %v; want nil, ErrEntryTooLarge", n, len(leaf), err)
		}
	}
}

func TestDecodeLeafRejects(t *testing.T) {
	tests := map[string]string{
		"Empty":                 ``,
		"NotJSON":               `kind=event`,
		"MissingKind":           `{"received_at":"2026-01-02T15:00:00.000000000Z","body":{}}`,
		"MissingBody":           `{"kind":"event","received_at":"2026-01-02T15:00:00.000000000Z"}`,
		"UnknownField":          `{"kind":"event","received_at":"2026-01-02T15:00:00.000000000Z","body":{},"extra":1}`,
		"BadTime":               `{"kind":"event","received_at":"yesterday","body":{}}`,
		"SubmittedByNotAString": `{"kind":"event","received_at":"2026-01-02T15:00:00.000000000Z","submitted_by":1,"body":{}}`,
	}
	for _, name := range slices.Sorted(maps.Keys(tests)) {
		t.Run(name, func(t *testing.T) {
			if l, err := DecodeLeaf([]byte(tests[name])); err == nil {
				t.Errorf("DecodeLeaf(%s) = %+v, want an error", tests[name], l)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	_, err := Parse(with("source.ip", "nope"), ParseOptions{})
	if got, want := err.Error(), "invalid event: source.ip: not an IP address"; got != want {
		t.Errorf("Parse(bad ip).Error() = %q, want %q", got, want)
	}
	if got, want := (FieldError{Reason: "truncated"}).Error(), "truncated"; got != want {
		t.Errorf("FieldError{}.Error() = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fullInput))
	f.Add([]byte(fullCanonical))
	f.Add(with("service", "billing"))
	f.Add(with("source.ip", "::ffff:1.2.3.4"))
	f.Add(with("source.ip", "fe80::1%eth0"))
	f.Add(with("time", "2026-01-02T17:04:05.123456789+02:00"))
	f.Add(with("time", "9999-12-31T23:00:00-02:00"))
	f.Add(with("source.geo", map[string]any{"lat": raw("-0.0"), "lon": raw("1e-7")}))
	f.Add(with("attributes", map[string]any{"k": "v\u2028", "a": "é"}))
	f.Add(with("reason", "\"\\/\u007f"))
	f.Add(with("source.port", "443"))
	f.Add(with("actor.name", "x"))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Add([]byte(`{"time":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data, ParseOptions{})
		if err != nil {
			var v *ValidationError
			if !errors.As(err, &v) || len(v.Fields) == 0 {
				t.Fatalf("Parse(%q) = %v, want a *ValidationError with fields", data, err)
			}
			return
		}
		c := e.Canonical()
		if !json.Valid(c) {
			t.Fatalf("Canonical() of %q = %s is not valid JSON", data, c)
		}
		e2, err := Parse(c, ParseOptions{})
		if err != nil {
			t.Fatalf("Parse(Canonical()) = %v\ninput: %q\ncanonical: %s", err, data, c)
		}
		if c2 := e2.Canonical(); !bytes.Equal(c, c2) {
			t.Fatalf("Canonical() not stable:\ninput: %q\nfirst:  %s\nsecond: %s", data, c, c2)
		}
	})
}
