package detect

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/accessledger/accessledger/event"
)

// TestGroupsDoNotKeepLeaves: a decoded event's strings share the memory
// of its whole leaf (the detector decodes without copying each field), so
// a group must copy the values it keeps: otherwise each group of a large
// event holds its whole leaf, which once held 147 MB of 64 KiB events.
// Groups of one field and of several are checked: their values live in
// the entity's key (groupVals).
func TestGroupsDoNotKeepLeaves(t *testing.T) {
	for _, tc := range []struct {
		groupBy string
		key     string
		want    []string
	}{
		{"[actor.id]", "alice", []string{"alice"}},
		{"[actor.id, source.ip]", "alice\x1f192.0.2.1", []string{"alice", "192.0.2.1"}},
	} {
		t.Run(tc.groupBy, func(t *testing.T) {
			rules := failedLogin + `title: brute force
id: bf
correlation:
  type: event_count
  rules: [failed_login]
  group-by: ` + tc.groupBy + `
  timespan: 1m
  condition: {gte: 5}
`
			e := compileYAML(t, rules, Config{})
			ev := fail(t, 0, "192.0.2.1", "alice")
			ev.Attributes = map[string]string{"pad": strings.Repeat("x", 60_000)}
			leaf, err := event.EncodeLeaf(event.KindEvent, ev.Time, ev.Canonical())
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeLeaf(1, leaf)
			if err != nil {
				t.Fatal(err)
			}
			e.Process(r)
			var c *correlator
			for _, x := range e.corrs {
				if x.rule.ID == "bf" {
					c = x
				}
			}
			g := c.lookup(tc.key)
			if g == nil {
				t.Fatalf("no group %q", tc.key)
			}
			vals := c.valsOf(g)
			if !slices.Equal(vals, tc.want) {
				t.Fatalf("group values %q, want %q", vals, tc.want)
			}
			// The decoded strings are substrings of one copy of the
			// leaf's text, which spans at least from the actor's id
			// to the end of the padding.
			lo := uintptr(unsafe.Pointer(unsafe.StringData(r.Event.Actor.ID)))
			pad := r.Event.Attributes["pad"]
			hi := uintptr(unsafe.Pointer(unsafe.StringData(pad))) + uintptr(len(pad))
			if hi <= lo {
				t.Fatal("the padding is not after the actor in the leaf: fix the test")
			}
			for _, v := range append(vals, g.key()) {
				if p := uintptr(unsafe.Pointer(unsafe.StringData(v))); p >= lo && p < hi {
					t.Fatalf("the group's %q shares the decoded leaf's memory", v)
				}
			}

			// After a restart the values are again in the entity's key,
			// with no string of their own.
			e2 := restarted(t, e, rules, Config{})
			for _, x := range e2.corrs {
				if x.rule.ID == "bf" {
					c = x
				}
			}
			g = c.lookup(tc.key)
			if g == nil || !slices.Equal(c.valsOf(g), tc.want) {
				t.Fatalf("after LoadState: group %q values %q, want %q", tc.key, c.valsOf(g), tc.want)
			}
			k := g.key()
			klo := uintptr(unsafe.Pointer(unsafe.StringData(k)))
			for _, v := range g.vals {
				if p := uintptr(unsafe.Pointer(unsafe.StringData(v))); p < klo || p >= klo+uintptr(len(k)) {
					t.Errorf("after LoadState: value %q is a string of its own, not in the key %q", v, k)
				}
			}
		})
	}
}
