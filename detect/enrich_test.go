package detect

import (
	"bytes"
	"net"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// tinyDB builds a MaxMind database of one network.
func tinyDB(t testing.TB, dbType, cidr string, rec mmdbtype.Map) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, RecordSize: 24, IPVersion: 6})
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Insert(n, rec); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testEnricher knows 81.2.69.0/24 (London, AS20712) and 2001:db8::/32
// (Paris).
func testEnricher(t testing.TB) *Enricher {
	t.Helper()
	city := tinyDB(t, "GeoLite2-City", "81.2.69.0/24", mmdbtype.Map{
		"country":  mmdbtype.Map{"iso_code": mmdbtype.String("GB")},
		"location": mmdbtype.Map{"latitude": mmdbtype.Float64(51.5142), "longitude": mmdbtype.Float64(-0.0931)},
	})
	asn := tinyDB(t, "GeoLite2-ASN", "81.2.69.0/24", mmdbtype.Map{
		"autonomous_system_number":       mmdbtype.Uint32(20712),
		"autonomous_system_organization": mmdbtype.String("Andrews & Arnold Ltd"),
	})
	e, err := NewEnricher(city, asn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestEnrich(t *testing.T) {
	e := testEnricher(t)
	tests := []struct {
		name    string
		over    map[string]any
		changed bool
		country string
		asn     uint32
	}{
		{"fills geo and asn", map[string]any{"source": map[string]any{"ip": "81.2.69.160"}}, true, "GB", 20712},
		{"keeps what was sent", map[string]any{"source": map[string]any{"ip": "81.2.69.160", "asn": 64500, "geo": map[string]any{"country": "FR"}}}, false, "FR", 64500},
		{"fills only the missing asn", map[string]any{"source": map[string]any{"ip": "81.2.69.160", "geo": map[string]any{"country": "FR"}}}, true, "FR", 20712},
		{"unknown address", map[string]any{"source": map[string]any{"ip": "45.83.64.1"}}, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := mkEvent(t, tt.over)
			if got := e.Enrich(ev); got != tt.changed {
				t.Errorf("Enrich() = %v, want %v", got, tt.changed)
			}
			country := ""
			if ev.Source.Geo != nil {
				country = ev.Source.Geo.Country
			}
			if country != tt.country || ev.Source.ASN != tt.asn {
				t.Errorf("Enrich() gave country %q asn %d, want %q %d", country, ev.Source.ASN, tt.country, tt.asn)
			}
		})
	}
	ev := mkEvent(t, map[string]any{"source": map[string]any{"ip": "81.2.69.160"}})
	e.Enrich(ev)
	if g := ev.Source.Geo; g == nil || g.Lat == nil || *g.Lat != 51.5142 {
		t.Errorf("Enrich() geo = %+v, want the London coordinates", g)
	}
	// The enriched event is still a valid event.
	if _, err := decodeCanonicalEvent(ev.Canonical()); err != nil {
		t.Errorf("enriched event does not round-trip: %v", err)
	}
	var nilE *Enricher
	if nilE.Enrich(ev) || nilE.HasGeo() {
		t.Error("a nil Enricher enriched something")
	}
}
