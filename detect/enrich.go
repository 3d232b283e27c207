package detect

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/accessledger/accessledger/event"
)

// Enricher fills in source.geo and source.asn of events that lack them,
// from operator-supplied MaxMind-format databases (GeoIP2/GeoLite2 City or
// Country, and ASN). Nothing is downloaded: without a database, its part
// of enrichment is off. An Enricher is safe for concurrent use.
type Enricher struct {
	city, asn *maxminddb.Reader
	hits      atomic.Uint64 // events given a geo or an ASN
	misses    atomic.Uint64 // lookups that found nothing
}

// OpenEnricher opens the databases at cityPath (City or Country) and
// asnPath (ASN); either may be empty. It returns nil, nil if both are.
func OpenEnricher(cityPath, asnPath string) (*Enricher, error) {
	if cityPath == "" && asnPath == "" {
		return nil, nil
	}
	e := &Enricher{}
	var err error
	if cityPath != "" {
		if e.city, err = maxminddb.Open(cityPath); err != nil {
			return nil, fmt.Errorf("opening GeoIP city database %s: %w", cityPath, err)
		}
	}
	if asnPath != "" {
		if e.asn, err = maxminddb.Open(asnPath); err != nil {
			e.Close()
			return nil, fmt.Errorf("opening GeoIP ASN database %s: %w", asnPath, err)
		}
	}
	return e, nil
}

// NewEnricher returns an Enricher over databases already in memory (tests,
// embedded databases); either may be nil.
func NewEnricher(city, asn []byte) (*Enricher, error) {
	e := &Enricher{}
	var err error
	if city != nil {
		if e.city, err = maxminddb.OpenBytes(city); err != nil {
			return nil, fmt.Errorf("reading GeoIP city database: %w", err)
		}
	}
	if asn != nil {
		if e.asn, err = maxminddb.OpenBytes(asn); err != nil {
			return nil, fmt.Errorf("reading GeoIP ASN database: %w", err)
		}
	}
	return e, nil
}

// Close releases the databases.
func (e *Enricher) Close() error {
	var errs []error
	if e.city != nil {
		errs = append(errs, e.city.Close())
	}
	if e.asn != nil {
		errs = append(errs, e.asn.Close())
	}
	return errors.Join(errs...)
}

// HasGeo and HasASN report which enrichment is on.
func (e *Enricher) HasGeo() bool { return e != nil && e.city != nil }

// HasASN reports whether an ASN database is loaded.
func (e *Enricher) HasASN() bool { return e != nil && e.asn != nil }

// Counts returns how many events were enriched and how many lookups found
// nothing.
func (e *Enricher) Counts() (enriched, missed uint64) { return e.hits.Load(), e.misses.Load() }

type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
}

// Enrich fills in ev.Source.Geo if the event has none, and
// ev.Source.ASN if it is zero, from the databases. What the submitter
// sent is never overwritten. It reports whether it changed ev.
func (e *Enricher) Enrich(ev *event.Event) bool {
	if e == nil || !ev.Source.IP.IsValid() {
		return false
	}
	changed := false
	ip := ev.Source.IP
	if e.city != nil && ev.Source.Geo == nil {
		var rec cityRecord
		res := e.city.Lookup(ip)
		if res.Found() && res.Decode(&rec) == nil {
			g := &event.Geo{}
			if isCountryCode(rec.Country.ISOCode) {
				g.Country = rec.Country.ISOCode
			}
			if rec.Location.Latitude != nil && rec.Location.Longitude != nil {
				g.Lat, g.Lon = rec.Location.Latitude, rec.Location.Longitude
			}
			if g.Country != "" || g.Lat != nil {
				ev.Source.Geo = g
				changed = true
			}
		} else {
			e.misses.Add(1)
		}
	}
	if e.asn != nil && ev.Source.ASN == 0 {
		var rec asnRecord
		res := e.asn.Lookup(ip)
		if res.Found() && res.Decode(&rec) == nil && rec.Number != 0 {
			ev.Source.ASN = rec.Number
			changed = true
		} else {
			e.misses.Add(1)
		}
	}
	if changed {
		e.hits.Add(1)
	}
	return changed
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}
