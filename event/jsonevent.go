package event

import (
	"bytes"
	"unicode/utf8"
)

// ValidEvent is Valid for the body of an event leaf. A body in the layout
// the canonical encoder writes (Event.AppendCanonical: known members in
// their fixed order, attributes sorted) is certified by a check that
// follows that layout and so needs no search for duplicate names; any
// other body, or one it cannot vouch for, is judged by Valid. Readers
// that check every leaf (the auditor) save about a third of the check.
func (sc *JSONValidator) ValidEvent(body []byte) bool {
	return canonicalEvent(body) || sc.Valid(body)
}

// evKind is what an event member's value must be for canonicalEvent.
type evKind uint8

const (
	evString    evKind = iota
	evNumber           // a JSON number
	evBool             // true or false
	evObject           // an object of the member's fields, in their order
	evStringMap        // an object of strings, names strictly increasing
)

// evField is a member of the canonical event layout.
type evField struct {
	tok  string // "name": as the encoder writes it
	kind evKind
	sub  []evField // the fields of an evObject
}

// The canonical event layout, member by member, in the order
// Event.AppendCanonical writes them; any member may be absent.
var (
	evActor    = []evField{{`"id":`, evString, nil}, {`"type":`, evString, nil}, {`"session":`, evString, nil}}
	evGeo      = []evField{{`"country":`, evString, nil}, {`"lat":`, evNumber, nil}, {`"lon":`, evNumber, nil}}
	evSource   = []evField{{`"ip":`, evString, nil}, {`"port":`, evNumber, nil}, {`"user_agent":`, evString, nil}, {`"geo":`, evObject, evGeo}, {`"asn":`, evNumber, nil}}
	evResource = []evField{{`"type":`, evString, nil}, {`"id":`, evString, nil}}
	evLayout   = []evField{
		{`"id":`, evString, nil}, {`"time":`, evString, nil}, {`"service":`, evString, nil},
		{`"actor":`, evObject, evActor}, {`"source":`, evObject, evSource},
		{`"action":`, evString, nil}, {`"category":`, evString, nil}, {`"outcome":`, evString, nil}, {`"reason":`, evString, nil},
		{`"resource":`, evObject, evResource}, {`"mfa":`, evBool, nil},
		{`"request_id":`, evString, nil}, {`"tenant":`, evString, nil}, {`"attributes":`, evStringMap, nil},
	}
)

// canonicalEvent reports true only if b is valid JSON (as jsontext.Value's
// IsValid says) in the canonical event layout: an object whose members
// are taken from evLayout in its order, each at most once, so no name
// repeats; names without escapes; string values as fastValidJSON accepts
// them (simple escapes, no \u). False means "not known to be valid".
func canonicalEvent(b []byte) bool {
	s := evScanner{b: b}
	i, ok := s.object(0, evLayout)
	return ok && i == len(b) && (!s.nonASCII || utf8.Valid(b))
}

// evScanner walks one body for canonicalEvent.
type evScanner struct {
	b        []byte
	nonASCII bool // a string held a byte of 0x80 or more: check UTF-8 at the end
}

// name scans a member name at b[i:], which must be a plain ASCII string
// (no escapes), and returns it and the offset after its colon.
func (s *evScanner) name(i int) ([]byte, int, bool) {
	b := s.b
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	start := i + 1
	i = plainEnd(b, start)
	if i+1 >= len(b) || b[i] != '"' || b[i+1] != ':' {
		return nil, i, false
	}
	return b[start:i], i + 2, true
}

// object scans an object of fields at b[i:] and returns the offset after it.
func (s *evScanner) object(i int, fields []evField) (int, bool) {
	b := s.b
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	i++
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	k := 0 // the first field the next member may be
	for {
		// The member is the first field from k whose "name": starts
		// here: that also proves the name a plain string.
		for k < len(fields) && (len(b)-i < len(fields[k].tok) || string(b[i:i+len(fields[k].tok)]) != fields[k].tok) {
			k++
		}
		if k == len(fields) {
			return i, false // unknown, out of order, repeated or escaped
		}
		f := &fields[k]
		k++
		j := i + len(f.tok)
		var ok bool
		switch f.kind {
		case evString:
			i, ok = s.str(j)
		case evNumber:
			i, ok = scanNumber(b, j)
		case evBool:
			switch {
			case bytes.HasPrefix(b[j:], []byte("true")):
				i, ok = j+4, true
			case bytes.HasPrefix(b[j:], []byte("false")):
				i, ok = j+5, true
			}
		case evObject:
			i, ok = s.object(j, f.sub)
		case evStringMap:
			i, ok = s.stringMap(j)
		}
		if !ok || i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// stringMap scans an object of string values whose names strictly
// increase (so none repeats), as the encoder writes attributes.
func (s *evScanner) stringMap(i int) (int, bool) {
	b := s.b
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	i++
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	var prev []byte
	for first := true; ; first = false {
		name, j, ok := s.name(i)
		if !ok || !first && bytes.Compare(name, prev) <= 0 {
			return j, false
		}
		prev = name
		if i, ok = s.str(j); !ok || i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// str scans a JSON string at b[i:] as fastValidJSON does: simple escapes
// only; bytes of 0x80 or more are left to the UTF-8 check at the end.
func (s *evScanner) str(i int) (int, bool) {
	b := s.b
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i++
	for {
		i = plainEnd(b, i)
		if i >= len(b) {
			return i, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c >= 0x80:
			s.nonASCII = true
			i++
		case c == '\\' && i+1 < len(b):
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			default:
				return i, false
			}
		default:
			return i, false // a control character or a cut escape
		}
	}
}
