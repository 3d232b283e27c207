package api

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
)

// oldParseTilePath is how getTile parsed tile paths before
// parseTilePath: tessera's parser, then a comparison with the canonical
// encoding.
func oldParseTilePath(rest string) (uint64, uint8, bool) {
	index, width, err := layout.ParseTileIndexPartial(rest)
	if err != nil || layout.EntriesPath(index, width) != "tile/entries/"+rest {
		return 0, 0, false
	}
	return index, width, true
}

// TestParseTilePath: parseTilePath accepts exactly the canonical paths,
// as tessera's parser with the canonical check does.
func TestParseTilePath(t *testing.T) {
	check := func(rest string) {
		t.Helper()
		i, w, ok := parseTilePath(rest)
		wi, ww, wok := oldParseTilePath(rest)
		if ok != wok || ok && (i != wi || w != ww) {
			t.Fatalf("parseTilePath(%q) = %d, %d, %v; want %d, %d, %v", rest, i, w, ok, wi, ww, wok)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	indexes := []uint64{0, 1, 9, 10, 999, 1000, 1001, 999999, 1000000, 1234067, 1<<64 - 1, 1<<64 - 1000, 18446744073709551}
	for range 2000 {
		indexes = append(indexes, r.Uint64()>>r.IntN(64))
	}
	for _, i := range indexes {
		for _, w := range []uint8{0, 1, 9, 10, 99, 100, 255} {
			p := strings.TrimPrefix(layout.EntriesPath(i, w), "tile/entries/")
			if got := string(appendTileN(nil, i, w)); got != p {
				t.Fatalf("appendTileN(%d, %d) = %q, want %q", i, w, got, p)
			}
			check(p)
			// Mutations: one byte changed, removed or added.
			for range 4 {
				b := []byte(p)
				alphabet := "0123456789x/.p-+ "
				switch j := r.IntN(len(b)); r.IntN(3) {
				case 0:
					b[j] = alphabet[r.IntN(len(alphabet))]
				case 1:
					b = append(b[:j], b[j+1:]...)
				default:
					b = append(b[:j], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[j:]...)...)
				}
				check(string(b))
			}
		}
	}
	for _, p := range []string{"", "/", "x", "000/", "x000/001", "x001/000", "x1000/000", "001.p/0", "001.p/256", "001.p/01",
		"001.p/+1", "001.p/", "001.p", ".p/1", "000.p/1/2", "x018/x446/x744/x073/x709/x551/x615", "x018/x446/x744/x073/x709/x551/615",
		"x018/x446/x744/x073/x709/x551/616", "x999/x999/x999/x999/x999/x999/999", "x001/x000/x000/x000/x000/x000/x000/000"} {
		check(p)
	}
	for l := range 70 {
		s := strconv.Itoa(l)
		got, ok := parseTileLevel(s)
		want, err := layout.ParseTileLevel(s)
		if ok != (err == nil) || ok && uint64(got) != want {
			t.Errorf("parseTileLevel(%q) = %d, %v; want %d, %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{"", "00", "01", "-1", "+1", "1 ", "x"} {
		if l, ok := parseTileLevel(s); ok {
			t.Errorf("parseTileLevel(%q) = %d, true; want false", s, l)
		}
	}
}
