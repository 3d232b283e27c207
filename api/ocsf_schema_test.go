package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ocsfSchemaDir is where the OCSF 1.3.0 JSON Schemas of the classes the
// export emits are: the directory OCSF_SCHEMA_DIR names, else
// shared/ocsf-schema/1.3.0 beside the repository (CI lays shared/ there).
// Its README says where the schemas come from and how they were made.
func ocsfSchemaDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OCSF_SCHEMA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "ocsf-schema", "1.3.0")
	}
	if _, err := os.Stat(filepath.Join(dir, "authentication.schema.json")); err != nil {
		t.Skipf("no OCSF 1.3.0 JSON Schema in %s (%v): put shared/ocsf-schema/1.3.0 beside the repository, or set OCSF_SCHEMA_DIR", dir, err)
	}
	return dir
}

// ocsfSchemas compiles the OCSF 1.3.0 class schemas, by class_uid.
func ocsfSchemas(t *testing.T) map[int]*jsonschema.Schema {
	t.Helper()
	dir := ocsfSchemaDir(t)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	out := map[int]*jsonschema.Schema{}
	for uid, name := range map[int]string{3002: "authentication", 6003: "api_activity"} {
		f, err := os.Open(filepath.Join(dir, name+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("reading the %s schema: %v", name, err)
		}
		m, _ := doc.(map[string]any)
		id := "https://schema.ocsf.io/schema/1.3.0/classes/" + name
		if m["$id"] != id || m["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Fatalf("%s schema has $id %v, $schema %v; want %s, draft 2020-12", name, m["$id"], m["$schema"], id)
		}
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("AddResource(%s) = %v", id, err)
		}
		if out[uid], err = c.Compile(id); err != nil {
			t.Fatalf("Compile(%s) = %v", id, err)
		}
	}
	return out
}

// ocsfVariedEvents returns valid events that together take every value
// the OCSF mapping treats apart: every action class (login, logout,
// create, read, update, delete, others), source.geo absent, a country,
// a country and coordinates, coordinates alone, a resource absent, with a
// type, an id or both, mfa absent, true and false (a cross product of
// these); and, drawn from a fixed seed, IPv4 and IPv6 sources (mapped
// IPv4 among them), ports, ASNs, user agents, actor types and sessions,
// outcomes, categories, reasons, request ids, tenants and attributes.
func ocsfVariedEvents() []map[string]any {
	actions := []string{"login", "logout", "create", "read", "update", "delete", "grant", "export"}
	geos := []map[string]any{nil,
		{"country": "DE"},
		{"country": "US", "lat": -33.5, "lon": 151.25},
		{"lat": 1.5, "lon": 2.5},
		{"lat": 0.0, "lon": -180.0},
		{"country": "JP", "lat": 90.0, "lon": 0.0},
	}
	resources := []map[string]any{nil, {"type": "table"}, {"id": "r-1"}, {"type": "doc", "id": "d/7"}}
	mfas := []any{nil, true, false}
	ips := []string{"192.0.2.10", "203.0.113.255", "0.0.0.0", "2001:db8::5", "::1", "::", "fe80::1:2",
		"::ffff:198.51.100.9", "2001:db8:1:2:3:4:5:6"}
	ports := []any{nil, 1, 443, 65535}
	asns := []any{nil, 1, 64512, 4294967295}
	actorTypes := []any{nil, "user", "admin", "service"}
	outcomes := []string{"success", "failure", "unknown"}
	categories := []string{"authentication", "authorization", "data_access", "admin", "system"}
	texts := []any{nil, "plain", `quote " and <b>&amp;</b>`, "ünïcode ✓ 日本", "=formula"}
	attrs := []map[string]string{nil, {"k": "v"}, {"a.b": "1", "c-d": "", "e_f": "x y"}}

	r := rand.New(rand.NewPCG(3002, 6003))
	pick := func(n int) int { return r.IntN(n) }
	var out []map[string]any
	for round := range 2 {
		for a, action := range actions {
			for g, geo := range geos {
				for res, resource := range resources {
					for m, mfa := range mfas {
						ev := map[string]any{
							"id":       fmt.Sprintf("ocsf-%d-%d-%d-%d-%d", round, a, g, res, m),
							"time":     testTime,
							"service":  []string{"sso", "billing", "vpn"}[pick(3)],
							"actor":    map[string]any{"id": fmt.Sprintf("user-%d", pick(50))},
							"source":   map[string]any{"ip": ips[pick(len(ips))]},
							"action":   action,
							"category": categories[pick(len(categories))],
							"outcome":  outcomes[pick(len(outcomes))],
						}
						set := func(path string, v any) {
							if v != nil {
								edit(ev, path, v)
							}
						}
						set("actor.type", actorTypes[pick(len(actorTypes))])
						if pick(2) == 0 {
							set("actor.session", fmt.Sprintf("s-%d", pick(9)))
						}
						set("source.port", ports[pick(len(ports))])
						set("source.asn", asns[pick(len(asns))])
						set("source.user_agent", texts[pick(len(texts))])
						if geo != nil {
							set("source.geo", geo)
						}
						if resource != nil {
							set("resource", resource)
						}
						set("mfa", mfa)
						set("reason", texts[pick(len(texts))])
						set("request_id", []any{nil, "req-1", "9f1c"}[pick(3)])
						set("tenant", []any{nil, "acme", "t/2"}[pick(3)])
						if at := attrs[pick(len(attrs))]; at != nil {
							set("attributes", at)
						}
						out = append(out, ev)
					}
				}
			}
		}
	}
	return out
}

// exportOCSF appends evs and returns their format=ocsf records, in order.
func exportOCSF(t *testing.T, evs []map[string]any) [][]byte {
	t.Helper()
	qs := newQueryServer(t)
	var bodies [][]byte
	for _, ev := range evs {
		bodies = append(bodies, mustJSON(t, ev))
	}
	for len(bodies) > 0 {
		k := min(500, len(bodies))
		if r := qs.testServer.post(t, "application/json", batchJSON(bodies[:k]...)); r.status != http.StatusCreated {
			t.Fatalf("POST = %v", r)
		}
		bodies = bodies[k:]
	}
	// The export reads what is indexed: wait for the events to be.
	size, _ := qs.l.Size()
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	if err := qs.x.Wait(ctx, size); err != nil {
		t.Fatalf("Index.Wait(%d) = %v", size, err)
	}
	r := qs.get(t, "/v1/events?format=ocsf", qs.auditor())
	if r.status != http.StatusOK {
		t.Fatalf("GET format=ocsf = %v", r)
	}
	lines := bytes.Split(bytes.TrimSpace(r.body), []byte("\n"))
	if len(lines) != len(evs) {
		t.Fatalf("format=ocsf sent %d records for %d events", len(lines), len(evs))
	}
	return lines
}

// TestOCSFExportIsValid validates format=ocsf against the JSON Schema of
// OCSF 1.3.0 (generated from the official schema by
// nsmithuk/ocsf-json-schema) with an independent validator, over events
// that take every value the mapping treats apart. The README promises
// every event as OCSF 1.3; coordinates without a country made a location
// OCSF refuses (it needs a city, country, postal code or region), and a
// resource with a type alone a resource_details (it needs a name or a
// uid): 576 of 1,536 varied events were invalid.
func TestOCSFExportIsValid(t *testing.T) {
	schemas := ocsfSchemas(t)
	evs := ocsfVariedEvents()
	lines := exportOCSF(t, evs)
	bad, classes := 0, map[[2]int]int{}
	for i, l := range lines {
		rec, err := jsonschema.UnmarshalJSON(bytes.NewReader(l))
		if err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, l)
		}
		var head struct {
			ClassUID   int `json:"class_uid"`
			ActivityID int `json:"activity_id"`
			Metadata   struct {
				Version string `json:"version"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(l, &head); err != nil {
			t.Fatal(err)
		}
		classes[[2]int{head.ClassUID, head.ActivityID}]++
		s, ok := schemas[head.ClassUID]
		if !ok || head.Metadata.Version != "1.3.0" {
			t.Fatalf("record %d has class_uid %d, metadata.version %q; want 3002 or 6003, 1.3.0\n%s", i, head.ClassUID, head.Metadata.Version, l)
		}
		if err := s.Validate(rec); err != nil {
			if bad++; bad <= 5 {
				t.Errorf("record %d is not valid OCSF 1.3.0 (class %d): %#v\nevent: %s\nrecord: %s", i, head.ClassUID, err, mustJSON(t, evs[i]), l)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d records are not valid OCSF 1.3.0", bad, len(lines))
	}
	// Every class and activity the mapping has was exported.
	for _, ca := range [][2]int{{3002, 1}, {3002, 2}, {6003, 1}, {6003, 2}, {6003, 3}, {6003, 4}, {6003, 99}} {
		if classes[ca] == 0 {
			t.Errorf("no record of class %d activity %d among %v", ca[0], ca[1], classes)
		}
	}
}

// TestOCSFUnmapped: what an OCSF 1.3.0 class has no valid place for is
// carried in unmapped under the event's own name, not dropped: mfa of an
// API Activity (no is_mfa), the resource of a login (Authentication has
// no resources) or one with a type alone (resource_details needs a name
// or uid), and coordinates without a country (location needs a city,
// country, postal code or region). Where OCSF has the place, the value is
// there and not in unmapped.
func TestOCSFUnmapped(t *testing.T) {
	absent := ""
	cases := []struct {
		name  string
		edits map[string]any
		want  map[string]string // path in the record: its JSON, or absent
	}{
		{"coordinates alone", map[string]any{"action": "read", "source.geo": map[string]any{"lat": 1.5, "lon": 2.5}},
			map[string]string{"src_endpoint.location": absent, "unmapped.source": `{"geo":{"lat":1.5,"lon":2.5}}`}},
		{"coordinates alone of a login", map[string]any{"source.geo": map[string]any{"lat": 0, "lon": -180}},
			map[string]string{"src_endpoint.location": absent, "unmapped.source": `{"geo":{"lat":0,"lon":-180}}`}},
		{"country and coordinates", map[string]any{"source.geo": map[string]any{"country": "DE", "lat": 1.5, "lon": 2.5}},
			map[string]string{"src_endpoint.location": `{"country":"DE","lat":1.5,"long":2.5}`, "unmapped.source": absent}},
		{"country alone", map[string]any{"action": "grant", "source.geo": map[string]any{"country": "DE"}},
			map[string]string{"src_endpoint.location": `{"country":"DE"}`, "unmapped.source": absent}},
		{"resource with a type alone", map[string]any{"action": "read", "resource": map[string]any{"type": "table"}},
			map[string]string{"resources": absent, "unmapped.resource": `{"type":"table"}`}},
		{"resource with an id", map[string]any{"action": "delete", "resource": map[string]any{"type": "doc", "id": "d1"}},
			map[string]string{"resources": `[{"type":"doc","uid":"d1"}]`, "unmapped.resource": absent}},
		{"resource with an id alone", map[string]any{"action": "create", "resource": map[string]any{"id": "d1"}},
			map[string]string{"resources": `[{"uid":"d1"}]`, "unmapped.resource": absent}},
		{"resource of a login", map[string]any{"resource": map[string]any{"type": "doc", "id": "d1"}},
			map[string]string{"resources": absent, "unmapped.resource": `{"type":"doc","id":"d1"}`}},
		{"resource with a type alone of a logout", map[string]any{"action": "logout", "resource": map[string]any{"type": "app"}},
			map[string]string{"resources": absent, "unmapped.resource": `{"type":"app"}`}},
		{"mfa false of an API activity", map[string]any{"action": "update", "mfa": false},
			map[string]string{"is_mfa": absent, "unmapped.mfa": `false`}},
		{"mfa true of an API activity", map[string]any{"action": "export", "mfa": true},
			map[string]string{"is_mfa": absent, "unmapped.mfa": `true`}},
		{"mfa of a login", map[string]any{"mfa": true},
			map[string]string{"is_mfa": `true`, "unmapped.mfa": absent}},
		{"nothing unmapped but category", map[string]any{"action": "read"},
			map[string]string{"unmapped.mfa": absent, "unmapped.resource": absent, "unmapped.source": absent, "unmapped.category": `"authentication"`}},
	}
	var evs []map[string]any
	for i, c := range cases {
		ev := event(i)
		for path, v := range c.edits {
			edit(ev, path, v)
		}
		evs = append(evs, ev)
	}
	lines := exportOCSF(t, evs)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rec map[string]any
			if err := json.Unmarshal(lines[i], &rec); err != nil {
				t.Fatal(err)
			}
			for path, want := range c.want {
				got := absent
				if v, ok := lookupPath(rec, path); ok {
					got = string(mustJSON(t, v))
				}
				if want != absent { // as got is written: keys sorted
					var v any
					if err := json.Unmarshal([]byte(want), &v); err != nil {
						t.Fatalf("want %s: %v", want, err)
					}
					want = string(mustJSON(t, v))
				}
				if got != want {
					if want == absent {
						want = "absent"
					}
					t.Errorf("OCSF of %s: %s = %s, want %s\nrecord: %s", mustJSON(t, evs[i]), path, got, want, lines[i])
				}
			}
		})
	}
}

// lookupPath finds a dotted path in a decoded JSON object.
func lookupPath(m map[string]any, path string) (any, bool) {
	var v any = m
	for p := range strings.SplitSeq(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = o[p]; !ok {
			return nil, false
		}
	}
	return v, true
}
