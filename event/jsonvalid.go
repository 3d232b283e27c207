package event

import (
	"bytes"
	"math/bits"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// ValidJSON reports whether entry is valid JSON as jsontext.Value.IsValid
// says with its default options (RFC 8259 grammar, valid UTF-8, no
// duplicate object member names, one value with optional whitespace
// around it). Stored entries are written by our canonical encoder, so
// nearly all of them pass fastValidJSON, a strict but narrow scanner
// about twice as fast as jsontext and allocation-free; whatever it cannot vouch for
// (whitespace between tokens, \u escapes, escaped names, deep nesting,
// many members, anything invalid) is decided by jsontext itself. A
// corrupted entry is thus never embedded as JSON.
//
// The log's readers call it on every entry they embed or certify: the
// export (api) and the auditor (audit --full).
func ValidJSON(entry []byte) bool {
	var sc JSONValidator
	return sc.Valid(entry)
}

// JSONValidator is ValidJSON with its state kept, so that a caller checking
// many entries does not clear it for each. The zero value is ready.
type JSONValidator struct {
	// The member names of the open objects: a fingerprint (length and
	// three of its bytes) and where the name is.
	fps  [fastJSONNames]uint64
	offs [fastJSONNames]int32
	// The first name of each open object.
	objStart [fastJSONDepth]int32
}

// Valid is ValidJSON.
func (sc *JSONValidator) Valid(entry []byte) bool {
	return sc.fast(entry) || jsontext.Value(entry).IsValid()
}

// Limits of fastValidJSON: deeper or wider values are left to jsontext.
const (
	fastJSONDepth = 32  // nesting levels
	fastJSONNames = 128 // member names of the objects open at once
)

// strPlain marks the bytes a JSON string may hold as they are: neither a
// quote, a backslash, a control character, nor a byte of a multi-byte
// UTF-8 sequence (those are checked at the end, by utf8.Valid).
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainEnd returns the offset of the first byte at or after i that is not
// plain in a JSON string (see strPlain), or len(b): eight bytes at a
// time, then byte by byte.
func plainEnd[T string | []byte](b T, i int) int {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		_ = b[i+7]
		x := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		q := x ^ (lo * '"')
		s := x ^ (lo * '\\')
		// A set high bit marks a byte below 0x20, a quote, a backslash
		// or a byte of 0x80 or more; the lowest one is exact.
		m := ((x-lo*0x20)&^x | (q-lo)&^q | (s-lo)&^s | x) & hi
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && strPlain[b[i]] {
		i++
	}
	return i
}

// fastValidJSON reports true only if b is valid JSON by jsontext's default
// rules and its form is one the canonical encoder writes: no whitespace
// between tokens, no \u escapes, no escapes in member names, at most
// fastJSONDepth levels and fastJSONNames names open at once. False means
// "not known to be valid": the caller asks jsontext.
func fastValidJSON(b []byte) bool {
	var sc JSONValidator
	return sc.fast(b)
}

// fast is fastValidJSON.
func (sc *JSONValidator) fast(b []byte) bool {
	var (
		nn       int32
		isObj    uint64 // bit d: level d is an object
		depth    int
		nonASCII bool
		i        int
		n        = len(b)
	)
	if n == 0 || n > 1<<30 {
		return false
	}
	const (
		stValue = iota // a value is expected
		stName         // a member name is expected
		stAfter        // a value ended
	)
	st := stValue
	for {
		switch st {
		case stValue:
			if i >= n {
				return false
			}
			switch c := b[i]; c {
			case '{', '[':
				if depth == fastJSONDepth {
					return false
				}
				i++
				if c == '{' {
					isObj |= 1 << depth
					sc.objStart[depth] = nn
					depth++
					if i < n && b[i] == '}' {
						i++
						depth--
						st = stAfter
					} else {
						st = stName
					}
				} else {
					isObj &^= 1 << depth
					depth++
					if i < n && b[i] == ']' {
						i++
						depth--
						st = stAfter
					}
				}
				continue
			case '"':
				i++
				for {
					i = plainEnd(b, i)
					if i >= n {
						return false
					}
					c := b[i]
					if c == '"' {
						i++
						break
					}
					if c >= 0x80 {
						nonASCII = true
						i++
						continue
					}
					if c != '\\' || i+1 >= n {
						return false // a control character, or a cut escape
					}
					switch b[i+1] {
					case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
						i += 2
					default:
						return false // \u (surrogates are jsontext's business) or invalid
					}
				}
			case 't':
				if !bytes.HasPrefix(b[i:], []byte("true")) {
					return false
				}
				i += 4
			case 'f':
				if !bytes.HasPrefix(b[i:], []byte("false")) {
					return false
				}
				i += 5
			case 'n':
				if !bytes.HasPrefix(b[i:], []byte("null")) {
					return false
				}
				i += 4
			default:
				var ok bool
				if i, ok = scanNumber(b, i); !ok {
					return false
				}
			}
			st = stAfter
		case stName:
			if i >= n || b[i] != '"' {
				return false
			}
			i++
			start := i
			i = plainEnd(b, i)
			if i >= n {
				return false
			}
			if c := b[i]; c >= 0x80 {
				// A non-ASCII name: still exact as raw bytes (no escapes),
				// so go on to its end.
				nonASCII = true
				for i < n && (strPlain[b[i]] || b[i] >= 0x80) {
					i++
				}
				if i >= n {
					return false
				}
			}
			if b[i] != '"' {
				return false // an escape or a control character
			}
			name := b[start:i]
			i++
			fp := uint64(len(name)) << 32
			if len(name) > 0 {
				fp |= uint64(name[0])<<24 | uint64(name[len(name)/2])<<16 | uint64(name[len(name)-1])<<8
			}
			if nn == fastJSONNames {
				return false
			}
			for k := sc.objStart[depth-1]; k < nn; k++ {
				if sc.fps[k] == fp && bytes.Equal(b[sc.offs[k]:int(sc.offs[k])+len(name)], name) {
					return false // a duplicate name: invalid, jsontext says why
				}
			}
			sc.fps[nn], sc.offs[nn] = fp, int32(start)
			nn++
			if i >= n || b[i] != ':' {
				return false
			}
			i++
			st = stValue
		case stAfter:
			if depth == 0 {
				return i == n && (!nonASCII || utf8.Valid(b))
			}
			if i >= n {
				return false
			}
			c := b[i]
			i++
			if isObj>>(depth-1)&1 == 1 {
				switch c {
				case ',':
					st = stName
				case '}':
					depth--
					nn = sc.objStart[depth]
				default:
					return false
				}
			} else {
				switch c {
				case ',':
					st = stValue
				case ']':
					depth--
				default:
					return false
				}
			}
		}
	}
}

// scanNumber scans a JSON number (RFC 8259) at b[i:] and returns the
// offset after it.
func scanNumber[T string | []byte](b T, i int) (int, bool) {
	n := len(b)
	if i < n && b[i] == '-' {
		i++
	}
	switch {
	case i >= n:
		return i, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < n && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return i, false
	}
	if i < n && b[i] == '.' {
		i++
		if i >= n || b[i] < '0' || b[i] > '9' {
			return i, false
		}
		for i++; i < n && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= n || b[i] < '0' || b[i] > '9' {
			return i, false
		}
		for i++; i < n && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	return i, true
}
