package detect

import (
	"io/fs"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzRules: no rule file makes loading, compiling or running the rules
// panic. Rules come from operators, and through the admin API; a rule
// the loader accepts must compile or be refused with an error, and a
// compiled rule must run over events, correlations and their state
// included. The seeds are the default pack's files.
func FuzzRules(f *testing.F) {
	files, err := fs.Glob(pack, "pack/rules/*.yml")
	if err != nil || len(files) == 0 {
		f.Fatalf("the default pack's rules: %v %v", files, err)
	}
	for _, name := range files {
		data, err := fs.ReadFile(pack, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(specCorrelation))
	var evs []*Record
	for i, over := range []map[string]any{
		{},
		{"outcome": "success"},
		{"actor": map[string]any{"id": "bob", "type": "user"}, "source": map[string]any{"ip": "2001:db8::1"}},
		{"action": "read", "category": "data_access", "resource": map[string]any{"type": "document", "id": "d1"}, "outcome": "success"},
	} {
		for j := range 3 {
			ev := mkEvent(f, over)
			ev.Time = ev.Time.Add(time.Duration(i*3+j) * time.Second)
			evs = append(evs, &Record{Index: uint64(len(evs)), ReceivedAt: ev.Time, Event: ev})
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := LoadRules(fstest.MapFS{"rules/r.yml": {Data: data}}, "rules")
		if err != nil {
			return
		}
		e, err := Compile(rs, Config{})
		if err != nil {
			return
		}
		for _, r := range evs {
			e.Process(r)
		}
	})
}
