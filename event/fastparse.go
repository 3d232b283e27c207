package event

import (
	"strconv"
	"unicode/utf8"
)

// decodeFast decodes the common shape of an event document into a
// wireEvent without reflection and with a few allocations: one object of
// members, every name known and seen once, strings without escapes, plain
// numbers. It only certifies: anything else (an escape, a null, an
// unknown or repeated member, a number of another form, bad UTF-8,
// trailing data) returns false, and Parse takes the strict decoder, which
// decodes it or says precisely why not. What it accepts, the strict
// decoder decodes to the same wireEvent (TestDecodeFastAgrees,
// FuzzDecodeFast).
func decodeFast(data []byte) (*wireEvent, *eventStore, bool) {
	d := fastDecoder{src: string(data)}
	st := &fastStore{}
	if !d.event(st) {
		return nil, nil, false
	}
	d.ws()
	if d.pos != len(d.src) {
		return nil, nil, false
	}
	return &st.w, &st.out, true
}

// fastStore holds what a decoded wireEvent points to, and where validate
// puts the event, in one allocation.
type fastStore struct {
	out  eventStore
	w    wireEvent
	a    wireActor
	s    wireSource
	g    wireGeo
	r    Resource
	strs [15]string
	port uint16
	asn  uint32
	lat  float64
	lon  float64
	mfa  bool
}

type fastDecoder struct {
	src  string
	pos  int
	nstr int
}

func (d *fastDecoder) ws() {
	for d.pos < len(d.src) {
		switch d.src[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// next skips white space and reports whether the next byte is c, taking
// it if so.
func (d *fastDecoder) next(c byte) bool {
	d.ws()
	if d.pos < len(d.src) && d.src[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// str reads a string without escapes or control characters, valid UTF-8.
func (d *fastDecoder) str() (string, bool) {
	if !d.next('"') {
		return "", false
	}
	start, ascii := d.pos, true
	for d.pos < len(d.src) {
		c := d.src[d.pos]
		switch {
		case c == '"':
			s := d.src[start:d.pos]
			d.pos++
			if !ascii && !utf8.ValidString(s) {
				return "", false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.pos++
	}
	return "", false
}

// strPtr reads a string into the store and returns a pointer to it.
func (d *fastDecoder) strPtr(st *fastStore) (*string, bool) {
	s, ok := d.str()
	if !ok || d.nstr == len(st.strs) {
		return nil, false
	}
	p := &st.strs[d.nstr]
	*p = s
	d.nstr++
	return p, true
}

// object reads an object's members, calling member with each name; seen
// bits (by the index member returns) reject a repeated name.
func (d *fastDecoder) object(member func(name string) (bit int, ok bool)) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	var seen uint32
	for {
		name, ok := d.str()
		if !ok || !d.next(':') {
			return false
		}
		d.ws()
		bit, ok := member(name)
		if !ok || seen&(1<<bit) != 0 {
			return false
		}
		seen |= 1 << bit
		if d.next('}') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}

// digits reads a plain non-negative integer literal: no sign, fraction,
// exponent or leading zero.
func (d *fastDecoder) digits() (uint64, bool) {
	start := d.pos
	for d.pos < len(d.src) && d.src[d.pos] >= '0' && d.src[d.pos] <= '9' {
		d.pos++
	}
	lit := d.src[start:d.pos]
	if lit == "" || len(lit) > 1 && lit[0] == '0' || d.numberGoesOn() {
		return 0, false
	}
	n, err := strconv.ParseUint(lit, 10, 64)
	return n, err == nil
}

// numberGoesOn reports whether a number literal continues past d.pos
// with something digits() does not read.
func (d *fastDecoder) numberGoesOn() bool {
	if d.pos >= len(d.src) {
		return false
	}
	switch d.src[d.pos] {
	case '.', 'e', 'E', '-', '+':
		return true
	}
	return false
}

// number reads a JSON number (RFC 8259 grammar) as a float64.
func (d *fastDecoder) number() (float64, bool) {
	end, ok := scanNumber(d.src, d.pos)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(d.src[d.pos:end], 64)
	d.pos = end
	return f, err == nil
}

func (d *fastDecoder) event(st *fastStore) bool {
	w := &st.w
	return d.object(func(name string) (int, bool) {
		var ok bool
		switch name {
		case "id":
			w.ID, ok = d.strPtr(st)
			return 0, ok
		case "time":
			w.Time, ok = d.strPtr(st)
			return 1, ok
		case "service":
			w.Service, ok = d.strPtr(st)
			return 2, ok
		case "actor":
			w.Actor = &st.a
			return 3, d.actor(st)
		case "source":
			w.Source = &st.s
			return 4, d.source(st)
		case "action":
			w.Action, ok = d.strPtr(st)
			return 5, ok
		case "category":
			w.Category, ok = d.strPtr(st)
			return 6, ok
		case "outcome":
			w.Outcome, ok = d.strPtr(st)
			return 7, ok
		case "reason":
			w.Reason, ok = d.strPtr(st)
			return 8, ok
		case "resource":
			w.Resource = &st.r
			return 9, d.resource(&st.r)
		case "mfa":
			w.MFA = &st.mfa
			switch {
			case len(d.src)-d.pos >= 4 && d.src[d.pos:d.pos+4] == "true":
				st.mfa, d.pos = true, d.pos+4
			case len(d.src)-d.pos >= 5 && d.src[d.pos:d.pos+5] == "false":
				d.pos += 5
			default:
				return 10, false
			}
			return 10, true
		case "request_id":
			w.RequestID, ok = d.strPtr(st)
			return 11, ok
		case "tenant":
			w.Tenant, ok = d.strPtr(st)
			return 12, ok
		case "attributes":
			w.Attributes = map[string]string{}
			return 13, d.attributes(w.Attributes)
		}
		return 0, false
	})
}

func (d *fastDecoder) actor(st *fastStore) bool {
	a := &st.a
	return d.object(func(name string) (int, bool) {
		var ok bool
		switch name {
		case "id":
			a.ID, ok = d.strPtr(st)
			return 0, ok
		case "type":
			a.Type, ok = d.strPtr(st)
			return 1, ok
		case "session":
			a.Session, ok = d.strPtr(st)
			return 2, ok
		}
		return 0, false
	})
}

func (d *fastDecoder) source(st *fastStore) bool {
	s := &st.s
	return d.object(func(name string) (int, bool) {
		var ok bool
		switch name {
		case "ip":
			s.IP, ok = d.strPtr(st)
			return 0, ok
		case "port":
			n, ok := d.digits()
			if !ok || n > 65535 {
				return 1, false
			}
			st.port, s.Port = uint16(n), &st.port
			return 1, true
		case "user_agent":
			s.UserAgent, ok = d.strPtr(st)
			return 2, ok
		case "geo":
			s.Geo = &st.g
			return 3, d.geo(st)
		case "asn":
			n, ok := d.digits()
			if !ok || n > 1<<32-1 {
				return 4, false
			}
			st.asn, s.ASN = uint32(n), &st.asn
			return 4, true
		}
		return 0, false
	})
}

func (d *fastDecoder) geo(st *fastStore) bool {
	g := &st.g
	return d.object(func(name string) (int, bool) {
		var ok bool
		switch name {
		case "country":
			g.Country, ok = d.strPtr(st)
			return 0, ok
		case "lat":
			st.lat, ok = d.number()
			g.Lat = &st.lat
			return 1, ok
		case "lon":
			st.lon, ok = d.number()
			g.Lon = &st.lon
			return 2, ok
		}
		return 0, false
	})
}

func (d *fastDecoder) resource(r *Resource) bool {
	return d.object(func(name string) (int, bool) {
		var ok bool
		switch name {
		case "type":
			r.Type, ok = d.str()
			return 0, ok
		case "id":
			r.ID, ok = d.str()
			return 1, ok
		}
		return 0, false
	})
}

func (d *fastDecoder) attributes(m map[string]string) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		k, ok := d.str()
		if !ok || !d.next(':') {
			return false
		}
		v, ok := d.str()
		if !ok {
			return false
		}
		if _, dup := m[k]; dup || len(m) == MaxAttributes {
			return false
		}
		m[k] = v
		if d.next('}') {
			return true
		}
		if !d.next(',') {
			return false
		}
	}
}
