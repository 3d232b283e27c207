package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
)

// stateVersion is the encoding of saved state; state of another version
// is discarded at load.
const stateVersion = 1

// StateWriter receives the engine's changed state entries. Set and
// Delete must not keep key or value past their return: the engine encodes
// every entry into the same buffers.
type StateWriter interface {
	Set(key, value []byte) error
	Delete(key []byte) error
}

// State keys. Everything the engine saves is under these prefixes of the
// store it is given (a Detector gives it a prefix of its own database).
const (
	keyMeta     = "m"
	keyFP       = "f\x00" // + rule id: the rule's fingerprint
	keyGroup    = "g\x00" // + rule id + \x00 + group key
	keySuppress = "s\x00" // + rule id + \x00 + suppress key
)

// SaveState writes through w every state entry that changed since the
// previous SaveState (or LoadState): window and baseline groups,
// suppressions, the watermark and the rules' fingerprints. Written in one
// transaction with the detector's cursor, it makes the state durable up to
// that cursor.
func (e *Engine) SaveState(w StateWriter) error {
	for _, k := range e.stale {
		if err := w.Delete([]byte(k)); err != nil {
			return err
		}
	}
	e.stale = e.stale[:0]
	if e.dirtyMeta || !e.savedOnce {
		if err := e.saveMeta(w); err != nil {
			return err
		}
	}
	if !e.savedOnce {
		if err := e.saveFingerprints(w); err != nil {
			return err
		}
	}
	for _, c := range e.corrs {
		prefix := keyGroup + c.rule.ID + "\x00"
		for _, k := range c.deleted {
			if c.lookup(k) != nil {
				continue
			}
			if err := w.Delete([]byte(prefix + k)); err != nil {
				return err
			}
		}
		c.deleted = c.deleted[:0]
		for _, g := range c.dirty {
			if !g.dirty || c.lookup(g.key()) != g {
				continue // removed since
			}
			if err := e.setGroup(w, prefix, g.key(), g, c); err != nil {
				return err
			}
			g.dirty = false
		}
		clear(c.dirty)
		c.dirty = c.dirty[:0]
		if err := saveSuppress(w, c.rule.ID, c.suppress); err != nil {
			return err
		}
	}
	for _, cr := range e.rules {
		if err := saveSuppress(w, cr.rule.ID, cr.suppress); err != nil {
			return err
		}
	}
	return nil
}

// SaveAll writes through w the engine's whole state, as a snapshot that
// stands on its own: the watermark, every rule's fingerprint, every group
// and every suppression, and no deletions. What SaveState would have
// written next is in it, so SaveState starts afresh after it.
func (e *Engine) SaveAll(w StateWriter) error {
	e.stale = e.stale[:0]
	if err := e.saveMeta(w); err != nil {
		return err
	}
	if err := e.saveFingerprints(w); err != nil {
		return err
	}
	for _, c := range e.corrs {
		prefix := keyGroup + c.rule.ID + "\x00"
		for k, ent := range c.table.ents {
			g := ent.groups[c.column]
			if g == nil {
				continue
			}
			if err := e.setGroup(w, prefix, k, g, c); err != nil {
				return err
			}
			g.dirty = false
		}
		clear(c.dirty)
		c.dirty = c.dirty[:0]
		c.deleted = c.deleted[:0]
		if err := saveAllSuppress(w, c.rule.ID, c.suppress); err != nil {
			return err
		}
	}
	for _, cr := range e.rules {
		if err := saveAllSuppress(w, cr.rule.ID, cr.suppress); err != nil {
			return err
		}
	}
	return nil
}

// saveMeta writes the encoding version, the watermark and where an idle
// flush last closed windows (idleClosed; a version that does not know it
// reads the first two and ignores it).
func (e *Engine) saveMeta(w StateWriter) error {
	b := binary.AppendUvarint(nil, stateVersion)
	b = binary.AppendVarint(b, e.watermark)
	b = binary.AppendVarint(b, e.idleClosed)
	if err := w.Set([]byte(keyMeta), b); err != nil {
		return err
	}
	e.dirtyMeta = false
	return nil
}

// saveFingerprints writes the fingerprint of every rule with state.
func (e *Engine) saveFingerprints(w StateWriter) error {
	for _, c := range e.corrs {
		if err := w.Set([]byte(keyFP+c.rule.ID), []byte(c.fp.String())); err != nil {
			return err
		}
	}
	for _, cr := range e.rules {
		if cr.suppress != nil {
			if err := w.Set([]byte(keyFP+cr.rule.ID), []byte(cr.fp.String())); err != nil {
				return err
			}
		}
	}
	e.savedOnce = true
	return nil
}

func saveAllSuppress(w StateWriter, ruleID string, s *suppressor) error {
	if s == nil {
		return nil
	}
	prefix := keySuppress + ruleID + "\x00"
	for k, until := range s.until {
		if err := w.Set([]byte(prefix+k), binary.AppendVarint(nil, until)); err != nil {
			return err
		}
	}
	clear(s.dirty)
	return nil
}

func saveSuppress(w StateWriter, ruleID string, s *suppressor) error {
	if s == nil {
		return nil
	}
	prefix := keySuppress + ruleID + "\x00"
	for k := range s.dirty {
		if until, ok := s.until[k]; ok {
			if err := w.Set([]byte(prefix+k), binary.AppendVarint(nil, until)); err != nil {
				return err
			}
		} else if err := w.Delete([]byte(prefix + k)); err != nil {
			return err
		}
		delete(s.dirty, k)
	}
	return nil
}

// LoadState restores the state saved by SaveState from every entry of the
// store. State of a rule changed in what that state depends on (its
// fingerprint, of the rule less its presentation, responses and
// thresholds, differs: an edit of the title, level or response, or of a
// correlation's count threshold, keeps the state; one of its detection,
// group-by or timespan does not), of a rule no longer loaded, or of
// another encoding version is discarded, and deleted by the next
// SaveState. A change of suppress alone discards the rule's suppressions
// and keeps its groups. State saved by earlier versions, under a
// fingerprint of the whole rule, is kept if the rule is unchanged, and
// saved under the new fingerprint by the next save. It must be called
// before the first Process.
func (e *Engine) LoadState(entries iter.Seq2[[]byte, []byte]) error {
	fps := map[string]string{}
	type pending struct{ key, val []byte }
	var groups, sups []pending
	version := uint64(stateVersion)
	for k, v := range entries {
		key := string(k)
		switch {
		case key == keyMeta:
			ver, n := binary.Uvarint(v)
			if n <= 0 {
				return errors.New("detect: corrupt state meta")
			}
			version = ver
			if ver == stateVersion {
				wm, m := binary.Varint(v[n:])
				if m <= 0 {
					return errors.New("detect: corrupt state meta")
				}
				e.watermark = wm
				if rest := v[n+m:]; len(rest) > 0 {
					// Saved by a version that notes idle flushes.
					ic, k := binary.Varint(rest)
					if k <= 0 {
						return errors.New("detect: corrupt state meta")
					}
					e.idleClosed = ic
				}
			}
		case strings.HasPrefix(key, keyFP):
			fps[key[len(keyFP):]] = string(v)
		case strings.HasPrefix(key, keyGroup):
			groups = append(groups, pending{k, v})
		case strings.HasPrefix(key, keySuppress):
			sups = append(sups, pending{k, v})
		default:
			e.stale = append(e.stale, key)
		}
	}
	if version != stateVersion {
		// Another encoding: start over.
		e.watermark = 0
		for _, p := range groups {
			e.stale = append(e.stale, string(p.key))
		}
		for _, p := range sups {
			e.stale = append(e.stale, string(p.key))
		}
		for id := range fps {
			e.stale = append(e.stale, keyFP+id)
		}
		return nil
	}
	// Which state still holds: that saved under the rule's fingerprint
	// (its groups' and its suppressions' apart), or under the
	// whole-document fingerprint of earlier versions if the rule is
	// unchanged (stateFP.accepts). The next save writes the fingerprints
	// anew (savedOnce).
	corrs := map[string]*correlator{}
	sup := map[string]*suppressor{}
	for _, c := range e.corrs {
		saved, ok := fps[c.rule.ID]
		if !ok {
			continue
		}
		groups, suppress := c.fp.accepts(saved)
		if groups {
			corrs[c.rule.ID] = c
		}
		if suppress && c.suppress != nil {
			sup[c.rule.ID] = c.suppress
		}
	}
	for _, cr := range e.rules {
		saved, ok := fps[cr.rule.ID]
		if !ok || cr.suppress == nil {
			continue
		}
		if _, suppress := cr.fp.accepts(saved); suppress {
			sup[cr.rule.ID] = cr.suppress
		}
	}
	for id := range fps {
		if corrs[id] == nil && sup[id] == nil {
			e.stale = append(e.stale, keyFP+id)
		}
	}
	loaded := map[*correlator][]*group{}
	for _, p := range groups {
		rest := string(p.key[len(keyGroup):])
		id, gkey, ok := strings.Cut(rest, "\x00")
		c := corrs[id]
		if !ok || c == nil {
			e.stale = append(e.stale, string(p.key))
			continue
		}
		g := c.newGroup()
		evidence, err := decodeGroup(p.val, g)
		if err != nil {
			return fmt.Errorf("detect: state of rule %s: %w", id, err)
		}
		c.addGroup(gkey, g)
		// Values as groupVals keeps them: in the entity's key.
		switch {
		case len(g.vals) == 1 && len(c.groupNames) == 1 && g.vals[0] == gkey:
			g.vals = nil // the key (valsOf)
		case len(g.vals) > 1 && strings.Join(g.vals, "\x1f") == gkey && splits(gkey, len(g.vals)):
			g.vals = nil // in the key (valsOf)
		case len(g.vals) > 1 && strings.Join(g.vals, "\x1f") == gkey:
			inKey(g.ent.key, g.vals)
		}
		for k, ev := range evidence {
			c.setEvidence(g, k, ev)
		}
		if !c.monotone && len(g.items) > 0 {
			e.due = min(e.due, g.items[0].t+c.span)
		}
		loaded[c] = append(loaded[c], g)
	}
	// Rebuild each correlation's LRU in order of last activity; a group
	// that has seen more than one event is protected, as it was before
	// the save unless protected overflowed since.
	for _, c := range e.corrs {
		gs := loaded[c]
		sortGroups(gs)
		for _, g := range gs {
			c.lru.add(g, c.ngroups)
			if g.first < g.last || len(g.items) > 1 {
				c.lru.touch(g, c.ngroups, e.cfg.MaxGroups)
			}
		}
	}
	for _, p := range sups {
		rest := string(p.key[len(keySuppress):])
		id, skey, ok := strings.Cut(rest, "\x00")
		s := sup[id]
		if !ok || s == nil {
			e.stale = append(e.stale, string(p.key))
			continue
		}
		until, n := binary.Varint(p.val)
		if n <= 0 {
			return fmt.Errorf("detect: corrupt suppression of rule %s", id)
		}
		s.until[skey] = until
	}
	e.savedOnce = false // rewrite the fingerprints
	return nil
}

func sortGroups(gs []*group) {
	// Insertion order by last activity, then key, for determinism.
	slices.SortFunc(gs, func(a, b *group) int {
		switch {
		case a.last < b.last:
			return -1
		case a.last > b.last:
			return 1
		}
		return strings.Compare(a.key(), b.key())
	})
}

// setGroup writes group g of correlation c, under prefix and key, through
// w, encoding into buffers the engine keeps for it (a key and a value
// allocated for each group were most of what a save allocated).
func (e *Engine) setGroup(w StateWriter, prefix, key string, g *group, c *correlator) error {
	e.keyBuf = append(append(e.keyBuf[:0], prefix...), key...)
	e.valBuf = appendGroup(e.valBuf[:0], g, c.valsOf(g), c.evidence[g])
	return w.Set(e.keyBuf, e.valBuf)
}

// appendGroup appends the stored form of group g to b.
func appendGroup(b []byte, g *group, vals []string, evidence map[itemKey][]uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(vals)))
	for _, v := range vals {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = binary.AppendVarint(b, g.first)
	b = binary.AppendVarint(b, g.last)
	b = binary.AppendVarint(b, g.firedUntil)
	b = binary.AppendUvarint(b, uint64(len(g.items)))
	for _, it := range g.items {
		b = binary.AppendVarint(b, it.t)
		b = binary.AppendUvarint(b, it.idx)
		b = binary.AppendUvarint(b, uint64(it.slot))
		b = binary.AppendUvarint(b, it.val)
		var ev []uint64
		if it.hasEv {
			ev = evidence[it.key()]
		}
		b = binary.AppendUvarint(b, uint64(len(ev)))
		for _, x := range ev {
			b = binary.AppendUvarint(b, x)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(g.terms)))
	for _, t := range g.terms {
		b = binary.AppendUvarint(b, t.hash)
		b = binary.AppendVarint(b, t.last)
	}
	b = binary.AppendUvarint(b, uint64(len(g.points)))
	for _, p := range g.points {
		b = binary.AppendVarint(b, p.t)
		b = binary.AppendUvarint(b, p.idx)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.lat))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.lon))
	}
	b = binary.AppendVarint(b, g.bucket)
	b = binary.AppendVarint(b, g.count)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(g.mean))
	if g.fired {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	evid := g.baselineEvidence()
	b = binary.AppendUvarint(b, uint64(len(evid)))
	for _, x := range evid {
		b = binary.AppendUvarint(b, x)
	}
	return b
}

// decoder reads what encodeGroup wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("corrupt group state")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("corrupt group state")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) count(max int) int {
	n := d.uvarint()
	if n > uint64(max) {
		d.err = errors.New("corrupt group state")
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = errors.New("corrupt group state")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) float() float64 {
	b := d.bytes(8)
	if b == nil {
		return 0
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b))
}

// decodeGroup decodes what encodeGroup wrote into g, a zero group, and
// returns the evidence of its items.
func decodeGroup(data []byte, g *group) (map[itemKey][]uint64, error) {
	d := &decoder{b: data}
	var evidence map[itemKey][]uint64
	nv := d.count(64)
	for i := 0; i < nv; i++ {
		g.vals = append(g.vals, string(d.bytes(d.count(1<<20))))
	}
	g.first, g.last, g.firedUntil = d.varint(), d.varint(), d.varint()
	ni := d.count(1 << 24)
	for i := 0; i < ni && d.err == nil; i++ {
		it := item{t: d.varint(), idx: d.uvarint(), slot: int32(d.uvarint()), val: d.uvarint()}
		ne := d.count(1 << 24)
		if ne > 0 {
			ev := make([]uint64, ne)
			for j := range ev {
				ev[j] = d.uvarint()
			}
			if evidence == nil {
				evidence = map[itemKey][]uint64{}
			}
			evidence[it.key()] = ev
			it.hasEv = true
		}
		g.items = append(g.items, it)
	}
	nt := d.count(1 << 16)
	for i := 0; i < nt && d.err == nil; i++ {
		g.terms = append(g.terms, term{hash: d.uvarint(), last: d.varint()})
	}
	np := d.count(1 << 16)
	for i := 0; i < np && d.err == nil; i++ {
		g.points = append(g.points, geoPoint{t: d.varint(), idx: d.uvarint(), lat: d.float(), lon: d.float()})
	}
	g.bucket, g.count = d.varint(), d.varint()
	g.mean = d.float()
	if f := d.bytes(1); f != nil {
		g.fired = f[0] == 1
	}
	nb := d.count(1 << 16)
	for i := 0; i < nb && d.err == nil; i++ {
		g.bucketEvid = append(g.bucketEvid, d.uvarint())
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("corrupt group state: trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return evidence, nil
}
