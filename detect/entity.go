package detect

import (
	"slices"
	"strings"
)

// entityTable holds the groups of the correlations that group by the same
// fields: one entry per entity (a value of those fields, an account for
// actor.id), with a column per correlation. An event that feeds several
// of these correlations is then looked up once, not once per correlation.
// Each correlation still bounds, orders (LRU) and expires its own groups;
// the table only indexes them. Owned by the engine's goroutine.
type entityTable struct {
	ents    map[string]*entity
	columns int
	// uniform: every slot of every correlation of the table takes the
	// key from the same fields, so an event has one key in the table and
	// the lookup can be cached for the event being processed.
	uniform bool

	buf []byte // where entityOf joins the values of a key of several fields

	// The lookup cache, for the event of Engine.seq.
	seq uint64
	key string
	ok  bool
	ent *entity
}

// entity is one key of a table with its groups, by column.
type entity struct {
	key    string
	groups []*group
	live   int // non-nil groups
}

// buildTables gives each correlation its table: correlations whose slots
// all group by the same fields share one; any other has a table of its
// own.
func (e *Engine) buildTables() {
	type shared struct {
		fields []fieldRef
		t      *entityTable
	}
	var tables []shared
	for _, c := range e.corrs {
		uniform := len(c.groupBy) > 0
		for _, fs := range c.groupBy[min(1, len(c.groupBy)):] {
			if !slices.Equal(fs, c.groupBy[0]) {
				uniform = false
			}
		}
		var t *entityTable
		if uniform {
			for _, s := range tables {
				if slices.Equal(s.fields, c.groupBy[0]) {
					t = s.t
				}
			}
		}
		if t == nil {
			t = &entityTable{ents: map[string]*entity{}, uniform: uniform}
			if uniform {
				tables = append(tables, shared{c.groupBy[0], t})
			}
		}
		c.table, c.column = t, t.columns
		t.columns++
	}
}

// entityOf returns the hit's group key and its entity in c's table (nil
// if there is none yet), or false if the hit lacks a group-by field.
func (e *Engine) entityOf(c *correlator, h *hit) (*entity, string, bool) {
	t := c.table
	// A hit without inner values is the event being processed: its key
	// is the same for every correlation of a uniform table.
	cache := t.uniform && h.inner == nil && h.rec != nil
	if cache && t.seq == e.seq {
		return t.ent, t.key, t.ok
	}
	var key string
	var ent *entity
	ok := true
	if len(c.groupBy[h.slot]) > 1 {
		// The values are joined in the table's buffer: looking the
		// key up allocates nothing, and only a new entity's key is
		// made a string.
		if t.buf, ok = c.appendGroupKey(t.buf[:0], h); ok {
			if ent = t.ents[string(t.buf)]; ent != nil {
				key = ent.key
			} else {
				key = string(t.buf)
			}
		}
	} else if key, ok = c.groupKeyOf(h); ok {
		ent = t.ents[key]
	}
	if cache {
		t.seq, t.key, t.ok, t.ent = e.seq, key, ok, ent
	}
	return ent, key, ok
}

// add creates the entity of key.
func (t *entityTable) add(key string) *entity {
	ent := newEntity(t.columns)
	ent.key = strings.Clone(key)
	t.ents[ent.key] = ent
	if t.ok && t.key == key {
		t.ent = ent
	}
	return ent
}

// lookup returns the group of key in column col, or nil.
func (t *entityTable) lookup(col int, key string) *group {
	if ent := t.ents[key]; ent != nil {
		return ent.groups[col]
	}
	return nil
}

// set puts g in column col of the entity of key, which it creates if need
// be.
func (t *entityTable) set(col int, key string, g *group) {
	ent := t.ents[key]
	if ent == nil {
		ent = t.add(key)
	}
	if ent.groups[col] == nil {
		ent.live++
	}
	ent.groups[col] = g
	g.ent = ent
}

// remove takes g out of column col, and drops its entity once empty
// (g keeps it, for its key).
func (t *entityTable) remove(col int, g *group) {
	ent := g.ent
	if ent.groups[col] != g {
		return
	}
	ent.groups[col] = nil
	if ent.live--; ent.live == 0 {
		delete(t.ents, ent.key)
		if t.ent == ent {
			t.ent = nil
		}
	}
}

// newEntity allocates an entity with its columns, in one block for up
// to 16 columns: one cache miss less per lookup.
func newEntity(columns int) *entity {
	switch {
	case columns <= 4:
		b := &struct {
			entity
			a [4]*group
		}{}
		b.groups = b.a[:columns:columns]
		return &b.entity
	case columns <= 8:
		b := &struct {
			entity
			a [8]*group
		}{}
		b.groups = b.a[:columns:columns]
		return &b.entity
	case columns <= 16:
		b := &struct {
			entity
			a [16]*group
		}{}
		b.groups = b.a[:columns:columns]
		return &b.entity
	}
	return &entity{groups: make([]*group, columns)}
}
