package event

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// referenceAppendString is appendString before its eight-byte scan: the
// byte-by-byte form the canonical encoding was defined by.
func referenceAppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
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

var stringCases = []string{
	"", "a", "plain ascii of more than eight bytes", "12345678", "1234567", "123456789",
	`quote"`, `back\slash`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f", "é日本😀", "\u2028\u2029",
	"\xff", "ab\xffcd", "\xed\xa0\x80", strings.Repeat("x", 100) + `"` + strings.Repeat("y", 17),
	strings.Repeat("é", 9) + "\n",
}

// TestAppendString: the eight-byte scan writes exactly what the byte-by-
// byte encoder wrote, byte for byte (the log's leaves must not change).
func TestAppendString(t *testing.T) {
	for _, s := range stringCases {
		if got, want := string(appendString(nil, s)), string(referenceAppendString(nil, s)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString([]byte("x"), s)), string(referenceAppendString([]byte("x"), s)); got != want {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// TestAppendTime: the hand-written formatter writes what
// AppendFormat(TimeFormat) writes, for any instant and location.
func TestAppendTime(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 1), time.Unix(-1, 999_999_999),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 30, 45, 123_000_000, paris), time.Date(2026, 11, 27, 23, 0, 0, 5, time.FixedZone("", -7*3600)),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(400_000_000_000)-200_000_000_000, r.Int64N(1_000_000_000)))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(TimeFormat) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
