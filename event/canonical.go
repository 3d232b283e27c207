package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeFormat is the canonical time format: UTC RFC 3339 with exactly nine
// fractional digits, so that canonical timestamps sort as strings.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// Canonical returns the canonical JSON encoding of e: fields in a fixed
// order, empty optional fields omitted, time in TimeFormat, the IP in its
// canonical text form and attributes sorted by key. Two events that mean the
// same thing encode to the same bytes.
func (e *Event) Canonical() []byte {
	return e.AppendCanonical(make([]byte, 0, 512))
}

// AppendCanonical appends the canonical JSON encoding of e to b.
func (e *Event) AppendCanonical(b []byte) []byte { return e.appendCanonical(b, false) }

// NegativeZeroCanonical returns e's canonical encoding as versions before
// -0 was written 0 made it, if e has a coordinate of -0, and nil
// otherwise: an event stored then is deduplicated against a resubmission
// by the fingerprint of that encoding (ledger.Entry.LegacyFingerprint).
func (e *Event) NegativeZeroCanonical() []byte {
	g := e.Source.Geo
	if g == nil || !(negativeZero(g.Lat) || negativeZero(g.Lon)) {
		return nil
	}
	return e.appendCanonical(nil, true)
}

func negativeZero(v *float64) bool { return v != nil && *v == 0 && math.Signbit(*v) }

// appendCanonical is AppendCanonical, with -0 kept as -0 if negZero.
func (e *Event) appendCanonical(b []byte, negZero bool) []byte {
	b = append(b, '{')
	if e.ID != "" {
		b = appendKey(b, "id", true)
		b = appendString(b, e.ID)
	}
	b = appendKey(b, "time", e.ID == "")
	b = appendTime(b, e.Time)
	b = appendKey(b, "service", false)
	b = appendString(b, e.Service)

	b = appendKey(b, "actor", false)
	b = append(b, '{')
	b = appendKey(b, "id", true)
	b = appendString(b, e.Actor.ID)
	b = appendOptString(b, "type", e.Actor.Type)
	b = appendOptString(b, "session", e.Actor.Session)
	b = append(b, '}')

	b = appendKey(b, "source", false)
	b = append(b, '{')
	b = appendKey(b, "ip", true)
	b = appendAddr(b, e.Source.IP)
	if e.Source.Port != 0 {
		b = appendKey(b, "port", false)
		b = strconv.AppendUint(b, uint64(e.Source.Port), 10)
	}
	b = appendOptString(b, "user_agent", e.Source.UserAgent)
	if g := e.Source.Geo; g != nil {
		b = appendKey(b, "geo", false)
		b = append(b, '{')
		first := true
		if g.Country != "" {
			b = appendKey(b, "country", first)
			b = appendString(b, g.Country)
			first = false
		}
		if g.Lat != nil {
			b = appendKey(b, "lat", first)
			b = appendCoordinate(b, *g.Lat, negZero)
			first = false
		}
		if g.Lon != nil {
			b = appendKey(b, "lon", first)
			b = appendCoordinate(b, *g.Lon, negZero)
		}
		b = append(b, '}')
	}
	if e.Source.ASN != 0 {
		b = appendKey(b, "asn", false)
		b = strconv.AppendUint(b, uint64(e.Source.ASN), 10)
	}
	b = append(b, '}')

	b = appendKey(b, "action", false)
	b = appendString(b, e.Action)
	b = appendKey(b, "category", false)
	b = appendString(b, e.Category)
	b = appendKey(b, "outcome", false)
	b = appendString(b, e.Outcome)
	b = appendOptString(b, "reason", e.Reason)
	if r := e.Resource; r != nil {
		b = appendKey(b, "resource", false)
		b = append(b, '{')
		first := true
		if r.Type != "" {
			b = appendKey(b, "type", true)
			b = appendString(b, r.Type)
			first = false
		}
		if r.ID != "" {
			b = appendKey(b, "id", first)
			b = appendString(b, r.ID)
		}
		b = append(b, '}')
	}
	if e.MFA != nil {
		b = appendKey(b, "mfa", false)
		b = strconv.AppendBool(b, *e.MFA)
	}
	b = appendOptString(b, "request_id", e.RequestID)
	b = appendOptString(b, "tenant", e.Tenant)
	if len(e.Attributes) > 0 {
		keys := make([]string, 0, len(e.Attributes))
		for k := range e.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = appendKey(b, "attributes", false)
		b = append(b, '{')
		for i, k := range keys {
			b = appendKey(b, k, i == 0)
			b = appendString(b, e.Attributes[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// MarshalJSON encodes e canonically.
func (e *Event) MarshalJSON() ([]byte, error) { return e.Canonical(), nil }

// Kind says what a leaf of the log records.
type Kind string

// Leaf kinds. Only KindEvent is written today; detectors and responders
// append alerts and responses.
const (
	KindEvent    Kind = "event"
	KindAlert    Kind = "alert"
	KindResponse Kind = "response"
	KindAdmin    Kind = "admin" // an API key created, revoked, rotated or changed (admin.go)
)

// Leaf is the envelope of every entry in the log:
//
//	{"kind":"event","received_at":"2026-01-02T15:04:05.000000000Z","submitted_by":"billing-svc","body":{...}}
//
// Body is the canonical encoding of the recorded object. SubmittedBy, in
// an event appended over the API, names the API key that submitted it
// (never its secret); leaves written before it was recorded, and leaves
// the server writes itself, have none.
type Leaf struct {
	Kind        Kind            `json:"kind"`
	ReceivedAt  time.Time       `json:"received_at"`
	SubmittedBy string          `json:"submitted_by,omitempty"`
	Body        json.RawMessage `json:"body"`
}

// ErrEntryTooLarge reports a leaf above MaxEntrySize.
var ErrEntryTooLarge = fmt.Errorf("entry larger than %d bytes", MaxEntrySize)

// EncodeLeaf returns the canonical leaf bytes for body, which must already
// be canonical JSON (as returned by Event.Canonical).
func EncodeLeaf(kind Kind, receivedAt time.Time, body []byte) ([]byte, error) {
	b := make([]byte, 0, len(body)+80)
	b = append(b, `{"kind":`...)
	b = appendString(b, string(kind))
	b = append(b, `,"received_at":`...)
	b = appendTime(b, receivedAt)
	b = append(b, `,"body":`...)
	b = append(b, body...)
	b = append(b, '}')
	if len(b) > MaxEntrySize {
		return nil, ErrEntryTooLarge
	}
	return b, nil
}

// EncodeEventLeaf returns the leaf of kind event for e, received at
// receivedAt, as EncodeLeaf(KindEvent, receivedAt, e.Canonical()) would,
// in one allocation, and the canonical body within it. The leaf names no
// submitter: see AppendSubmittedEventLeaf.
func EncodeEventLeaf(receivedAt time.Time, e *Event) (leaf, body []byte, err error) {
	_, leaf, body, err = AppendEventLeaf(make([]byte, 0, 640), receivedAt, e)
	return leaf, body, err
}

// AppendEventLeaf appends to dst the leaf EncodeEventLeaf returns, and
// returns the extended buffer with the leaf and its canonical body within
// it (capped: appending to dst again never changes them). On error dst is
// returned as it was.
func AppendEventLeaf(dst []byte, receivedAt time.Time, e *Event) (out, leaf, body []byte, err error) {
	return AppendSubmittedEventLeaf(dst, receivedAt, "", e)
}

// AppendSubmittedEventLeaf is AppendEventLeaf for an event submitted by
// the API key named submittedBy, which the leaf records after received_at:
//
//	{"kind":"event","received_at":"...","submitted_by":"billing-svc","body":{...}}
//
// An empty submittedBy writes no member, as AppendEventLeaf does. The
// member is part of the leaf, hence of its hash, but not of the body: the
// body alone is the event (its dedup fingerprint), so the same event
// submitted again with another key is a duplicate, not a conflict. The
// API encodes the events of a request into one buffer this way.
func AppendSubmittedEventLeaf(dst []byte, receivedAt time.Time, submittedBy string, e *Event) (out, leaf, body []byte, err error) {
	first := len(dst)
	b := append(dst, `{"kind":"event","received_at":`...)
	b = appendTime(b, receivedAt)
	if submittedBy != "" {
		b = append(b, `,"submitted_by":`...)
		b = appendString(b, submittedBy)
	}
	b = append(b, `,"body":`...)
	start := len(b)
	b = e.AppendCanonical(b)
	end := len(b)
	b = append(b, '}')
	if len(b)-first > MaxEntrySize {
		return dst, nil, nil, ErrEntryTooLarge
	}
	return b, b[first:len(b):len(b)], b[start:end:end], nil
}

// Decoded is an event leaf decoded: the time it was received and the
// event, as decoding the bytes EncodeEventLeaf wrote from them gives them
// back (times in UTC). The API appends it with the leaf
// (ledger.Entry.Decoded), so that the log's followers do not decode the
// leaf again. Nothing may modify it once appended.
type Decoded struct {
	ReceivedAt time.Time
	// SubmittedBy is the leaf's submitted_by: the name of the API key
	// that submitted the event, or "" for none.
	SubmittedBy string
	Event       *Event
}

// DecodeLeaf parses leaf bytes as written by EncodeLeaf or
// AppendSubmittedEventLeaf, with or without submitted_by.
func DecodeLeaf(data []byte) (*Leaf, error) {
	var l Leaf
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("decoding leaf: %w", err)
	}
	if l.Kind == "" || len(l.Body) == 0 {
		return nil, errors.New("decoding leaf: missing kind or body")
	}
	return &l, nil
}

func appendKey(b []byte, k string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = appendString(b, k)
	return append(b, ':')
}

func appendOptString(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	b = appendKey(b, k, false)
	return appendString(b, v)
}

func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, TimeFormat)
		return append(b, '"')
	}
	// TimeFormat by hand: four times faster than AppendFormat, which
	// parses its layout on every call (two timestamps per event).
	hour, minute, sec := t.Clock()
	var f [32]byte
	f[0], f[5], f[8], f[11], f[14], f[17], f[20], f[30], f[31] = '"', '-', '-', 'T', ':', ':', '.', 'Z', '"'
	putDigits(f[1:5], year)
	putDigits(f[6:8], int(month))
	putDigits(f[9:11], day)
	putDigits(f[12:14], hour)
	putDigits(f[15:17], minute)
	putDigits(f[18:20], sec)
	putDigits(f[21:30], t.Nanosecond())
	return append(b, f[:]...)
}

// putDigits writes v in decimal into d, zero-padded to len(d) digits.
func putDigits(d []byte, v int) {
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
}

const hexDigits = "0123456789abcdef"

// appendAddr appends a JSON string of a's text, as appendString of
// a.String() would, without allocating the text: an address without a
// zone is digits, hex letters, dots and colons.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() || a.Zone() != "" {
		return appendString(b, a.String())
	}
	b = append(b, '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

// appendString appends s as a JSON string, escaping exactly what RFC 8259
// requires (plus U+2028 and U+2029, as encoding/json does) and nothing else,
// so the output is stable.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Runs of plain ASCII, eight bytes at a time.
		if i = plainEnd(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendCoordinate appends a latitude or longitude in plain decimal, -0
// as 0: they mean the same, and JavaScript's JSON.stringify writes 0
// where Python writes -0.0, so a retry through another client's language
// was another event (409) rather than a duplicate.
// (negZero keeps it, as NegativeZeroCanonical needs.)
func appendCoordinate(b []byte, v float64, negZero bool) []byte {
	if v == 0 && !negZero {
		v = 0 // -0 == 0: this makes it +0
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}
