package witness

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTruncate: a witness's answer quoted in an error is cut at 200 bytes
// without splitting a character, and bytes that are not UTF-8 are
// replaced, so that the message is valid text.
func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"short", "  not found\n", "not found"},
		{"ASCII cut", strings.Repeat("a", 300), strings.Repeat("a", 200) + "…"},
		{"cut before a character it would split", strings.Repeat("a", 199) + strings.Repeat("é", 10), strings.Repeat("a", 199) + "…"},
		{"invalid UTF-8", "bad \xff\xfe answer", "bad \uFFFD answer"},
	} {
		got := truncate([]byte(tc.in))
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("%s: truncate(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}
