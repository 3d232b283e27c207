package detect

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/accessledger/accessledger/event"
)

// TestGroupsDoNotKeepLeaves: a decoded event's strings share the memory
// of its whole leaf (the detector decodes without copying each field), so
// a group must copy the values it keeps: otherwise each group of a large
// event holds its whole leaf, which once held 147 MB of 64 KiB events.
func TestGroupsDoNotKeepLeaves(t *testing.T) {
	e := compileYAML(t, failedLogin+`title: brute force
id: bf
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [actor.id]
  timespan: 1m
  condition: {gte: 5}
`, Config{})
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
	g := c.lookup("alice")
	if g == nil || len(g.vals) != 1 || g.vals[0] != "alice" {
		t.Fatalf("group of alice = %+v", g)
	}
	if unsafe.StringData(g.vals[0]) == unsafe.StringData(r.Event.Actor.ID) {
		t.Fatal("the group's value shares the decoded leaf's memory")
	}
}
