package api

import (
	"strconv"
	"strings"
)

// parseTilePath parses the part of a C2SP tlog-tiles path after the level
// (or "entries"): N[.p/W], where N is the tile index in groups of three
// digits (x001/x234/067) and W the width of a partial tile (1 to 255). It
// accepts only the canonical encoding, the one layout.TilePath and
// layout.EntriesPath write, and allocates nothing: a tile server answers
// thousands of these a second.
func parseTilePath(rest string) (index uint64, width uint8, ok bool) {
	n, w, partial := strings.Cut(rest, ".p/")
	if partial {
		v, err := strconv.ParseUint(w, 10, 8)
		if err != nil || v < 1 || v > 255 {
			return 0, 0, false
		}
		width = uint8(v)
	}
	for {
		group, more, found := strings.Cut(n, "/")
		if found {
			if len(group) != 4 || group[0] != 'x' {
				return 0, 0, false
			}
			group = group[1:]
		} else if len(group) != 3 {
			return 0, 0, false
		}
		var g uint64
		for i := range 3 {
			c := group[i]
			if c < '0' || c > '9' {
				return 0, 0, false
			}
			g = 10*g + uint64(c-'0')
		}
		if index > (1<<64-1-g)/1000 {
			return 0, 0, false // overflows uint64
		}
		index = 1000*index + g
		if !found {
			break
		}
		n = more
	}
	// Canonical: what the index and width encode to, byte for byte (no
	// leading x000/ group, no leading zeros in W).
	var buf [48]byte
	return index, width, string(appendTileN(buf[:0], index, width)) == rest
}

// parseTileLevel parses the level of a hash tile path: 0 to 63, in
// decimal without leading zeros.
func parseTileLevel(s string) (uint8, bool) {
	l, err := strconv.ParseUint(s, 10, 8)
	if err != nil || l > 63 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	return uint8(l), true
}

// appendTileN appends the N[.p/W] part of a tile path, as layout.TilePath
// and layout.EntriesPath write it.
func appendTileN(dst []byte, index uint64, width uint8) []byte {
	var groups [7]uint16 // a uint64 has at most 7 groups of 3 digits
	k := 0
	for {
		groups[k] = uint16(index % 1000)
		k++
		if index /= 1000; index == 0 {
			break
		}
	}
	for k--; k >= 0; k-- {
		if k > 0 {
			dst = append(dst, 'x')
		}
		g := groups[k]
		dst = append(dst, byte('0'+g/100), byte('0'+g/10%10), byte('0'+g%10))
		if k > 0 {
			dst = append(dst, '/')
		}
	}
	if width > 0 {
		dst = append(dst, ".p/"...)
		dst = strconv.AppendUint(dst, uint64(width), 10)
	}
	return dst
}
