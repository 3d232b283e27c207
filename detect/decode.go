package detect

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/accessledger/accessledger/event"
)

// ErrNotEvent means a leaf is not of kind event (an alert, a response).
var ErrNotEvent = errors.New("detect: leaf is not an event")

// DecodeLeaf decodes a leaf of the log into a Record. Leaves the API wrote
// are canonical, which a dedicated scanner decodes about ten times faster
// than a general JSON decoder; anything else is decoded and validated with
// event.Parse. It returns ErrNotEvent for leaves of another kind.
func DecodeLeaf(index uint64, data []byte) (*Record, error) {
	s := &scanner{b: data}
	kind, receivedAt, body, err := s.envelope()
	if err != nil {
		l, derr := event.DecodeLeaf(data)
		if derr != nil {
			return nil, derr
		}
		if l.Kind != event.KindEvent {
			return nil, ErrNotEvent
		}
		kind, receivedAt, body = []byte(l.Kind), l.ReceivedAt, l.Body
	}
	if string(kind) != string(event.KindEvent) {
		return nil, ErrNotEvent
	}
	blk := new(leafBlock)
	blk.rec = Record{Index: index, ReceivedAt: receivedAt, Event: &blk.ev}
	if err := blk.decode(body); err != nil {
		ev, err := event.Parse(body, event.ParseOptions{})
		if err != nil {
			return nil, fmt.Errorf("decoding event %d: %w", index, err)
		}
		blk.rec.Event = ev
	}
	return &blk.rec, nil
}

// leafBlock is what DecodeLeaf allocates for a canonical leaf, in one
// allocation: the record, its event and the event's optional parts
// (besides, only the event's text is allocated).
type leafBlock struct {
	rec      Record
	ev       event.Event
	res      event.Resource
	geo      event.Geo
	lat, lon float64
}

var errScan = errors.New("not canonical")

// scanner reads canonical JSON: no insignificant white space.
type scanner struct {
	b []byte
	i int
	// text, if set, is b as a string: strings without escapes are then
	// substrings of it, one allocation for the whole document.
	text string
}

func (s *scanner) expect(c byte) error {
	if s.i >= len(s.b) || s.b[s.i] != c {
		return errScan
	}
	s.i++
	return nil
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// key reads "name": and returns name (without allocating).
func (s *scanner) key() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	// Keys are short: a loop beats bytes.IndexByte.
	for start := s.i; s.i < len(s.b); s.i++ {
		switch s.b[s.i] {
		case '"':
			k := s.b[start:s.i]
			s.i++
			return k, s.expect(':')
		case '\\':
			return nil, errScan
		}
	}
	return nil, errScan
}

// str reads a JSON string.
func (s *scanner) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			var v string
			if s.text != "" {
				v = s.text[start:s.i]
			} else {
				v = string(s.b[start:s.i])
			}
			s.i++
			return v, nil
		}
		if c == '\\' {
			s.i = start
			return s.strEscaped()
		}
		if c < 0x20 {
			return "", errScan
		}
		s.i++
	}
	return "", errScan
}

// rawStr reads a JSON string as bytes, without allocating unless it has
// escapes.
func (s *scanner) rawStr() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	for start := s.i; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], nil
		case c == '\\':
			s.i = start - 1
			v, err := s.str()
			return []byte(v), err
		case c < 0x20:
			return nil, errScan
		}
	}
	return nil, errScan
}

func (s *scanner) strEscaped() (string, error) {
	var out []byte
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return "", errScan
			}
			return string(out), nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return "", errScan
			}
			e := s.b[s.i+1]
			s.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return "", errScan
				}
				if utf16.IsSurrogate(r) {
					if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
						s.i += 2
						r2, ok := s.hex4()
						if !ok {
							return "", errScan
						}
						r = utf16.DecodeRune(r, r2)
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", errScan
			}
		case c < 0x20:
			return "", errScan
		default:
			out = append(out, c)
			s.i++
		}
	}
	return "", errScan
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// number returns the text of a JSON number.
func (s *scanner) number() ([]byte, error) {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	if s.i == start {
		return nil, errScan
	}
	return s.b[start:s.i], nil
}

func (s *scanner) uint(bits int) (uint64, error) {
	start := s.i
	n, err := s.number()
	if err != nil {
		return 0, err
	}
	if s.text != "" {
		return strconv.ParseUint(s.text[start:s.i], 10, bits)
	}
	return strconv.ParseUint(string(n), 10, bits)
}

func (s *scanner) float() (float64, error) {
	start := s.i
	n, err := s.number()
	if err != nil {
		return 0, err
	}
	if s.text != "" {
		return strconv.ParseFloat(s.text[start:s.i], 64)
	}
	return strconv.ParseFloat(string(n), 64)
}

func (s *scanner) boolean() (bool, error) {
	switch {
	case bytes.HasPrefix(s.b[s.i:], []byte("true")):
		s.i += 4
		return true, nil
	case bytes.HasPrefix(s.b[s.i:], []byte("false")):
		s.i += 5
		return false, nil
	}
	return false, errScan
}

// object calls fn for each member of an object, which must read the value.
func (s *scanner) object(fn func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errScan
		}
	}
}

// skipValue skips one JSON value (the leaf body), returning its bytes.
func (s *scanner) skipValue() ([]byte, error) {
	start := s.i
	depth := 0
	inStr := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		if inStr {
			switch c {
			case '\\':
				s.i++
			case '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return s.b[start:s.i], nil
			}
		}
	}
	return nil, errScan
}

// Canonical envelopes of events, as event.EncodeLeaf and
// event.AppendSubmittedEventLeaf write them.
const (
	envelopeHead      = `{"kind":"event","received_at":`
	envelopeSubmitted = `,"submitted_by":`
	envelopeBody      = `,"body":{`
)

// envelope reads {"kind":...,"received_at":...,"submitted_by":...,"body":...}
// (submitted_by is optional: leaves written before it have none, and it
// is not returned).
func (s *scanner) envelope() (kind []byte, receivedAt time.Time, body []byte, err error) {
	// The envelope of an event as event.EncodeLeaf writes it, without
	// going member by member: what the general case below returns.
	if n := len(s.b); bytes.HasPrefix(s.b, []byte(envelopeHead)) && s.b[n-1] == '}' {
		s.i = len(envelopeHead)
		t, err := s.time()
		if err == nil && bytes.HasPrefix(s.b[s.i:], []byte(envelopeSubmitted)) {
			s.i += len(envelopeSubmitted)
			_, err = s.rawStr()
		}
		if err == nil && bytes.HasPrefix(s.b[s.i:], []byte(envelopeBody)) {
			body := s.b[s.i+len(envelopeBody)-1 : n-1]
			s.i = n
			return s.b[len(`{"kind":"`):len(`{"kind":"event`)], t, body, nil
		}
		s.i = 0
	}
	err = s.object(func(k []byte) error {
		var err error
		switch string(k) {
		case "kind":
			kind, err = s.rawStr()
		case "received_at":
			receivedAt, err = s.time()
		case "submitted_by":
			_, err = s.rawStr()
		case "body":
			// Canonical leaves end with the body: take the rest, which
			// the event decoder then checks.
			if n := len(s.b); len(kind) > 0 && n > s.i && s.b[n-1] == '}' && s.b[s.i] == '{' {
				body, s.i = s.b[s.i:n-1], n-1
				return nil
			}
			body, err = s.skipValue()
		default:
			return errScan
		}
		return err
	})
	if err == nil && (len(kind) == 0 || body == nil || s.i != len(s.b)) {
		err = errScan
	}
	return
}

// time reads a time in event.TimeFormat, falling back to RFC 3339.
func (s *scanner) time() (time.Time, error) {
	if err := s.expect('"'); err != nil {
		return time.Time{}, err
	}
	j := bytes.IndexByte(s.b[s.i:], '"')
	if j < 0 {
		return time.Time{}, errScan
	}
	v := s.b[s.i : s.i+j]
	s.i += j + 1
	if t, ok := parseCanonicalTime(v); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, string(v))
}

// parseCanonicalTime parses 2006-01-02T15:04:05.000000000Z exactly.
func parseCanonicalTime(b []byte) (time.Time, bool) {
	if len(b) != len(event.TimeFormat) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[29] != 'Z' {
		return time.Time{}, false
	}
	num := func(p []byte) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	ns, ok7 := num(b[20:29])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC)
	if t.Day() != d {
		return time.Time{}, false
	}
	return t, true
}

// member reads the next member name of an object whose '{' was read:
// it returns false at the closing '}'. first says whether a member was
// read before (then a ',' must separate them).
func (s *scanner) member(first bool) ([]byte, bool, error) {
	if s.peek() == '}' {
		s.i++
		return nil, false, nil
	}
	if !first {
		if err := s.expect(','); err != nil {
			return nil, false, err
		}
	}
	k, err := s.key()
	return k, err == nil, err
}

// decodeCanonicalEvent decodes an event as event.Canonical writes it. Any
// deviation is an error, and the caller falls back to event.Parse. It
// walks the document with explicit loops (no closures), which keeps it
// to a few allocations.
func decodeCanonicalEvent(b []byte) (*event.Event, error) {
	blk := new(leafBlock)
	if err := blk.decode(b); err != nil {
		return nil, err
	}
	return &blk.ev, nil
}

// decode decodes the canonical event b into blk.ev.
func (blk *leafBlock) decode(b []byte) error {
	s := &scanner{b: b, text: string(b)}
	e := &blk.ev
	if err := s.expect('{'); err != nil {
		return err
	}
	timeSet := false
	for first := true; ; first = false {
		k, more, err := s.member(first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		switch string(k) {
		case "id":
			e.ID, err = s.str()
		case "time":
			e.Time, err = s.time()
			timeSet = true
		case "service":
			e.Service, err = s.str()
		case "actor":
			err = s.actor(&e.Actor)
		case "source":
			err = s.source(&e.Source, blk)
		case "action":
			e.Action, err = s.str()
		case "category":
			e.Category, err = s.str()
		case "outcome":
			e.Outcome, err = s.str()
		case "reason":
			e.Reason, err = s.str()
		case "resource":
			blk.res = event.Resource{}
			e.Resource = &blk.res
			err = s.resource(e.Resource)
		case "mfa":
			var v bool
			v, err = s.boolean()
			e.MFA = &v
		case "request_id":
			e.RequestID, err = s.str()
		case "tenant":
			e.Tenant, err = s.str()
		case "attributes":
			e.Attributes, err = s.attributes()
		default:
			return errScan
		}
		if err != nil {
			return err
		}
	}
	if s.i != len(b) || !timeSet || e.Actor.ID == "" || !e.Source.IP.IsValid() {
		return errScan
	}
	return nil
}

func (s *scanner) actor(a *event.Actor) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		k, more, err := s.member(first)
		if err != nil || !more {
			return err
		}
		switch string(k) {
		case "id":
			a.ID, err = s.str()
		case "type":
			a.Type, err = s.str()
		case "session":
			a.Session, err = s.str()
		default:
			return errScan
		}
		if err != nil {
			return err
		}
	}
}

func (s *scanner) source(src *event.Source, blk *leafBlock) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		k, more, err := s.member(first)
		if err != nil || !more {
			return err
		}
		switch string(k) {
		case "ip":
			var ip string
			if ip, err = s.str(); err == nil {
				src.IP, err = netip.ParseAddr(ip)
			}
		case "port":
			var p uint64
			p, err = s.uint(16)
			src.Port = uint16(p)
		case "user_agent":
			src.UserAgent, err = s.str()
		case "asn":
			var a uint64
			a, err = s.uint(32)
			src.ASN = uint32(a)
		case "geo":
			// The geo and its coordinates are in the leaf's block.
			blk.geo, blk.lat, blk.lon = event.Geo{}, 0, 0
			src.Geo = &blk.geo
			err = s.geo(&blk.geo, &blk.lat, &blk.lon)
		default:
			return errScan
		}
		if err != nil {
			return err
		}
	}
}

func (s *scanner) geo(g *event.Geo, lat, lon *float64) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		k, more, err := s.member(first)
		if err != nil || !more {
			return err
		}
		switch string(k) {
		case "country":
			g.Country, err = s.str()
		case "lat":
			*lat, err = s.float()
			g.Lat = lat
		case "lon":
			*lon, err = s.float()
			g.Lon = lon
		default:
			return errScan
		}
		if err != nil {
			return err
		}
	}
}

func (s *scanner) resource(r *event.Resource) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		k, more, err := s.member(first)
		if err != nil || !more {
			return err
		}
		switch string(k) {
		case "type":
			r.Type, err = s.str()
		case "id":
			r.ID, err = s.str()
		default:
			return errScan
		}
		if err != nil {
			return err
		}
	}
}

func (s *scanner) attributes() (map[string]string, error) {
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for first := true; ; first = false {
		k, more, err := s.member(first)
		if err != nil {
			return nil, err
		}
		if !more {
			return m, nil
		}
		v, err := s.str()
		if err != nil {
			return nil, err
		}
		m[string(k)] = v
	}
}
