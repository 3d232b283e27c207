package index

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// fields are the indexed values of one leaf. Slices may point into the
// leaf's bytes; they are valid only while the leaf is.
type fields struct {
	kind         []byte
	service      []byte
	actor        []byte
	action       []byte
	category     []byte
	outcome      []byte
	resourceType []byte
	resourceID   []byte
	tenant       []byte
	submittedBy  []byte
	ip           []byte
	time         []byte
}

var errSyntax = errors.New("index: leaf is not the JSON the log writes")

// extract reads the indexed fields of a leaf without decoding all of it:
// the envelope's kind and submitted_by and, in its body, time, service, actor.id,
// source.ip, action, category, outcome, resource.type, resource.id and
// tenant. Every leaf the log writes is JSON (event.EncodeLeaf); the
// scanner accepts any JSON, in any member order, and skips what it does
// not index. A string with escapes is unescaped into new memory.
func extract(data []byte) (fields, error) {
	var f fields
	s := scanner{b: data}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "kind":
			return s.str(&f.kind)
		case "submitted_by":
			return s.str(&f.submittedBy)
		case "body":
			if s.peek() != '{' {
				return s.skip()
			}
			return s.object(func(key []byte) error {
				switch string(key) {
				case "time":
					return s.str(&f.time)
				case "service":
					return s.str(&f.service)
				case "action":
					return s.str(&f.action)
				case "category":
					return s.str(&f.category)
				case "outcome":
					return s.str(&f.outcome)
				case "tenant":
					return s.str(&f.tenant)
				case "actor":
					return s.sub(func(key []byte) error {
						if string(key) == "id" {
							return s.str(&f.actor)
						}
						return s.skip()
					})
				case "source":
					return s.sub(func(key []byte) error {
						if string(key) == "ip" {
							return s.str(&f.ip)
						}
						return s.skip()
					})
				case "resource":
					return s.sub(func(key []byte) error {
						switch string(key) {
						case "type":
							return s.str(&f.resourceType)
						case "id":
							return s.str(&f.resourceID)
						}
						return s.skip()
					})
				}
				return s.skip()
			})
		}
		return s.skip()
	})
	if err != nil {
		return fields{}, err
	}
	s.ws()
	if s.i != len(s.b) {
		return fields{}, errSyntax
	}
	return f, nil
}

// parseTime parses an event time as the log writes it (RFC 3339).
func parseTime(b []byte) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(b))
	return t, err == nil
}

// scanner is a minimal JSON reader over one leaf.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// object reads an object, calling member for each member name with the
// scanner positioned at its value; member must consume the value.
func (s *scanner) object(member func(key []byte) error) error {
	if s.peek() != '{' {
		return errSyntax
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		var key []byte
		if err := s.str(&key); err != nil {
			return err
		}
		if s.peek() != ':' {
			return errSyntax
		}
		s.i++
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// sub reads a nested object, or skips a value of another type.
func (s *scanner) sub(member func(key []byte) error) error {
	if s.peek() != '{' {
		return s.skip()
	}
	return s.object(member)
}

// str reads a string into *dst. A value of another type is skipped and
// leaves *dst nil.
func (s *scanner) str(dst *[]byte) error {
	if s.peek() != '"' {
		return s.skip()
	}
	s.i++
	start := s.i
	// The common case, a string without escapes: find its end at once.
	end := bytes.IndexByte(s.b[start:], '"')
	if end < 0 {
		return errSyntax
	}
	if bytes.IndexByte(s.b[start:start+end], '\\') < 0 {
		*dst = s.b[start : start+end]
		s.i = start + end + 1
		return nil
	}
	return s.escaped(start, dst)
}

// escaped finishes reading a string that has escapes, from start.
func (s *scanner) escaped(start int, dst *[]byte) error {
	out := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			*dst = out
			return nil
		case c < 0x20:
			return errSyntax
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			return errSyntax
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return errSyntax
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					if r2, ok = s.hex4(); !ok {
						return errSyntax
					}
				}
				r = utf16.DecodeRune(r, r2)
			}
			out = utf8.AppendRune(out, r)
		default:
			return errSyntax
		}
	}
	return errSyntax
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// skip consumes one value of any type.
func (s *scanner) skip() error {
	switch s.peek() {
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.skip(); err != nil {
				return err
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return errSyntax
			}
		}
	case '"':
		var v []byte
		return s.str(&v)
	case 0:
		return errSyntax
	}
	// A number or a literal: up to the next delimiter.
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if s.i == start {
				return errSyntax
			}
			return nil
		}
		s.i++
	}
	if s.i == start {
		return errSyntax
	}
	return nil
}
