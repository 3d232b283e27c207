// Package sim generates realistic synthetic access traffic for measuring
// detection: an organisation's users with home cities, time zones, daily
// rhythms, offices behind NAT, mobile networks, devices, typos, travel,
// admins, HR staff and service accounts, plus labelled attack scenarios,
// one kind per rule of the default pack. The same seed gives the same
// events.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/accessledger/accessledger/event"
)

// Config tunes a simulation. The zero value is filled with the defaults.
type Config struct {
	Seed  uint64
	Users int // default 500
	Days  int // default 21; attacks fall in the days after Learning
	// Start is midnight UTC of the first day; default: Days ago, today.
	Start time.Time
	// Learning is how many days pass before attacks start (default 15,
	// beyond the default pack's longest learning period of 14 days).
	Learning int
	// AttacksPerScenario is how many times each scenario is injected
	// (default 2).
	AttacksPerScenario int
}

func (c *Config) defaults() {
	if c.Users <= 0 {
		c.Users = 500
	}
	if c.Days <= 0 {
		c.Days = 21
	}
	if c.Learning <= 0 {
		c.Learning = min(15, c.Days-1)
	}
	if c.AttacksPerScenario <= 0 {
		c.AttacksPerScenario = 2
	}
	if c.Start.IsZero() {
		c.Start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -c.Days)
	}
}

// Label describes one injected attack: which scenario, which rule should
// detect it, when, and the ids of its events.
type Label struct {
	Scenario string    `json:"scenario"`
	Rule     string    `json:"rule"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	EventIDs []string  `json:"event_ids"`
}

// Scenario names, with the default-pack rule each one targets.
var Scenarios = []struct{ Name, Rule string }{
	{"bruteforce_fast", "al-bruteforce-fast"},
	{"bruteforce_slow", "al-bruteforce-slow"},
	{"bruteforce_account_distributed", "al-bruteforce-account"},
	{"password_spray_source", "al-spray-source"},
	{"password_spray_network", "al-spray-network"},
	{"credential_stuffing", "al-credential-stuffing"},
	{"success_after_failures", "al-success-after-failures"},
	{"user_enumeration", "al-user-enumeration"},
	{"login_from_reserved_range", "al-login-denied-range"},
	{"new_country", "al-new-country"},
	{"new_asn", "al-new-asn"},
	{"impossible_travel", "al-impossible-travel"},
	{"admin_unusual_hour", "al-admin-unusual-hour"},
	{"grant_then_sensitive_access", "al-grant-then-sensitive-access"},
	{"mass_data_access", "al-mass-data-access"},
	{"rate_spike", "al-rate-spike"},
	{"audit_log_tampering", "al-audit-log-tampering"},
	{"audit_log_access", "al-audit-log-access"},
}

type city struct {
	name, country string
	lat, lon      float64
	utc           float64 // offset in hours (no DST)
	homeASN       uint32
	mobileASN     uint32
	octet         byte // first octet of its synthetic address pools
}

// cities are where users live and travel. ASNs are each country's
// incumbent residential and mobile networks; address pools are synthetic.
var cities = []city{
	{"Paris", "FR", 48.86, 2.35, 1, 3215, 51207, 90},
	{"Lyon", "FR", 45.76, 4.84, 1, 12322, 51207, 91},
	{"Berlin", "DE", 52.52, 13.40, 1, 3320, 3209, 84},
	{"Munich", "DE", 48.14, 11.58, 1, 3320, 6805, 85},
	{"London", "GB", 51.51, -0.13, 0, 2856, 12576, 86},
	{"Madrid", "ES", 40.42, -3.70, 1, 3352, 12430, 88},
	{"Amsterdam", "NL", 52.37, 4.90, 1, 1136, 33915, 94},
	{"New York", "US", 40.71, -74.0, -5, 7922, 21928, 68},
	{"Chicago", "US", 41.88, -87.63, -6, 7922, 22394, 69},
	{"San Francisco", "US", 37.77, -122.42, -8, 7018, 20057, 76},
	{"Toronto", "CA", 43.65, -79.38, -5, 812, 577, 99},
	{"Sao Paulo", "BR", -23.55, -46.63, -3, 28573, 26599, 177},
	{"Tokyo", "JP", 35.68, 139.69, 9, 2516, 9605, 126},
	{"Sydney", "AU", -33.87, 151.21, 10, 1221, 4804, 101},
	{"Mumbai", "IN", 19.08, 72.88, 5.5, 9829, 55836, 117},
	{"Singapore", "SG", 1.35, 103.82, 8, 7473, 4773, 116},
}

// offices are where office workers sit, behind two NAT addresses each.
var offices = []struct {
	city int
	asn  uint32
	nat  [2]netip.Addr
}{
	{0, 5410, [2]netip.Addr{netip.MustParseAddr("193.252.10.5"), netip.MustParseAddr("193.252.10.6")}},
	{7, 701, [2]netip.Addr{netip.MustParseAddr("65.196.20.10"), netip.MustParseAddr("65.196.20.11")}},
	{15, 3758, [2]netip.Addr{netip.MustParseAddr("203.116.5.20"), netip.MustParseAddr("203.116.5.21")}},
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
}

type role uint8

const (
	roleStaff role = iota
	roleHR
	roleAdmin
	roleService
)

type user struct {
	id        string
	role      role
	city      int
	office    int // -1 for remote workers
	homeIP    netip.Addr
	mobileIP  netip.Addr
	ua        string
	workStart float64 // local hour
	workLen   float64
	travel    *trip
	// adminHours is when (UTC hour of day) the admin last acted.
	adminHours [24]time.Time
}

type trip struct {
	city int
	// depart is the departure, from the arrival abroad, to the departure
	// back (a UTC midnight), back when the user is active at home again.
	depart, from, to, back time.Time
}

// Generator produces the simulation one day at a time.
type Generator struct {
	cfg       Config
	rng       *rand.Rand
	users     []*user
	labels    []Label
	nextID    int
	attack    int
	day       int // days returned by Day
	generated int // days generated
	// attacks scheduled per day
	plan map[int][]int // day -> scenario indexes
	// carry holds events generated ahead, not yet returned: users' local
	// days straddle UTC days, and the stream must be in time order.
	carry []*event.Event
}

// New returns a generator for cfg.
func New(cfg Config) *Generator {
	cfg.defaults()
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), plan: map[int][]int{}}
	for i := 0; i < cfg.Users; i++ {
		u := &user{id: fmt.Sprintf("u%05d@corp.example", i), office: -1}
		switch r := g.rng.IntN(100); {
		case r < 3:
			u.role = roleAdmin
		case r < 8:
			u.role = roleHR
		}
		u.city = g.rng.IntN(len(cities))
		if g.rng.IntN(100) < 60 {
			o := g.rng.IntN(len(offices))
			u.office, u.city = o, offices[o].city
		}
		u.homeIP = g.poolAddr(u.city, 0)
		u.mobileIP = g.poolAddr(u.city, 1)
		u.ua = userAgents[g.rng.IntN(len(userAgents))]
		u.workStart = 7.5 + g.rng.Float64()*2.5
		u.workLen = 8 + g.rng.Float64()
		g.users = append(g.users, u)
	}
	for i := 0; i < max(3, cfg.Users/100); i++ {
		g.users = append(g.users, &user{id: fmt.Sprintf("svc-%02d", i), role: roleService, city: 7, office: -1,
			homeIP: netip.AddrFrom4([4]byte{10, 20, 0, byte(10 + i)}), ua: "sync-agent/2.3"})
	}
	// Attacks: each scenario AttacksPerScenario times, on days after
	// learning, spread evenly.
	attackDays := max(1, cfg.Days-cfg.Learning)
	for s := range Scenarios {
		for k := 0; k < cfg.AttacksPerScenario; k++ {
			d := cfg.Learning + g.rng.IntN(attackDays)
			g.plan[d] = append(g.plan[d], s)
		}
	}
	return g
}

// poolAddr returns an address of a city's residential (kind 0) or mobile
// (kind 1) pool.
func (g *Generator) poolAddr(c int, kind int) netip.Addr {
	o := cities[c].octet
	second := byte(16 + kind*64 + g.rng.IntN(48))
	return netip.AddrFrom4([4]byte{o, second, byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
}

// Labels returns the attacks injected so far.
func (g *Generator) Labels() []Label { return g.labels }

// Days returns the number of days to generate.
func (g *Generator) Days() int { return g.cfg.Days }

// Benign counts the benign events generated so far.
func (g *Generator) Benign() int { return g.nextID }

// Day returns the events of the next day (UTC), in time order; nil when
// the simulation is over. Users' local days straddle UTC days, so the
// generator works a day ahead and holds back what belongs to later days.
func (g *Generator) Day() []*event.Event {
	if g.day >= g.cfg.Days {
		return nil
	}
	for g.generated <= g.day+1 && g.generated < g.cfg.Days {
		g.carry = append(g.carry, g.generate(g.generated)...)
		g.generated++
	}
	slices.SortStableFunc(g.carry, func(a, b *event.Event) int { return a.Time.Compare(b.Time) })
	g.day++
	cut := len(g.carry)
	if g.day < g.cfg.Days {
		end := g.cfg.Start.AddDate(0, 0, g.day)
		cut, _ = slices.BinarySearchFunc(g.carry, end, func(e *event.Event, t time.Time) int { return e.Time.Compare(t) })
	}
	out := slices.Clone(g.carry[:cut])
	g.carry = slices.Delete(g.carry, 0, cut)
	if out == nil {
		out = []*event.Event{}
	}
	return out
}

// generate makes the events of users' day d (which may start before or
// end after the UTC day).
func (g *Generator) generate(d int) []*event.Event {
	midnight := g.cfg.Start.AddDate(0, 0, d)
	var evs []*event.Event
	for _, u := range g.users {
		evs = append(evs, g.userDay(u, midnight)...)
	}
	// Benign grants: about one a day, by an admin, to a random user.
	admins := g.byRole(roleAdmin)
	if len(admins) > 0 && g.rng.IntN(3) > 0 && midnight.Weekday() != time.Saturday && midnight.Weekday() != time.Sunday {
		a := admins[g.rng.IntN(len(admins))]
		target := g.users[g.rng.IntN(len(g.users))]
		t := g.localTime(a, midnight, a.workStart+2+g.rng.Float64()*4)
		ev := g.base(a, t, "iam", "grant", event.CategoryAdmin, event.OutcomeSuccess)
		ev.Resource = &event.Resource{Type: "user", ID: target.id}
		evs = append(evs, ev)
	}
	for _, s := range g.plan[d] {
		evs = append(evs, g.inject(s, midnight)...)
	}
	return evs
}

func (g *Generator) byRole(r role) []*user {
	var out []*user
	for _, u := range g.users {
		if u.role == r {
			out = append(out, u)
		}
	}
	return out
}

// localTime is midnight (UTC) of a day plus a local hour of the user's
// current city.
func (g *Generator) localTime(u *user, midnight time.Time, hour float64) time.Time {
	c := cities[u.city]
	if u.travel != nil && !midnight.Before(u.travel.from) && midnight.Before(u.travel.to) {
		c = cities[u.travel.city]
	}
	return midnight.Add(time.Duration((hour - c.utc) * float64(time.Hour)))
}

func (g *Generator) newID(prefix string) string {
	g.nextID++
	return fmt.Sprintf("%s-%d", prefix, g.nextID)
}

// base builds an event of u at t from u's usual place.
func (g *Generator) base(u *user, t time.Time, service, action, category, outcome string) *event.Event {
	ev := &event.Event{
		ID:       g.newID("b"),
		Time:     t.UTC().Truncate(time.Millisecond),
		Service:  service,
		Actor:    event.Actor{ID: u.id, Type: event.ActorUser},
		Action:   action,
		Category: category,
		Outcome:  outcome,
	}
	switch u.role {
	case roleAdmin:
		ev.Actor.Type = event.ActorAdmin
	case roleService:
		ev.Actor.Type = event.ActorService
	}
	g.place(u, ev, t, 0)
	return ev
}

// place sets the source of ev: office NAT on workdays for office workers,
// home or mobile otherwise, the travel city while travelling.
func (g *Generator) place(u *user, ev *event.Event, t time.Time, where int) {
	c := u.city
	ip, asn := u.homeIP, cities[c].homeASN
	switch {
	case u.role == roleService:
		ev.Source = event.Source{IP: u.homeIP, UserAgent: u.ua, ASN: 64512, Geo: geo(cities[7], 0, 0)}
		return
	case u.travel != nil && !t.Before(u.travel.from) && t.Before(u.travel.to):
		c = u.travel.city
		ip, asn = g.hotelAddr(c), cities[c].mobileASN
	case where == 2:
		ip, asn = u.mobileIP, cities[c].mobileASN
	case where == 1 && u.office >= 0:
		o := offices[u.office]
		ip, asn = o.nat[int(ev.Time.UnixNano()/int64(time.Hour))%2], o.asn
	}
	ev.Source = event.Source{IP: ip, UserAgent: u.ua, ASN: asn, Geo: geo(cities[c], float64(ip.As4()[2]%16)/100, float64(ip.As4()[3]%16)/100)}
}

func (g *Generator) hotelAddr(c int) netip.Addr {
	o := cities[c].octet
	return netip.AddrFrom4([4]byte{o, 120, byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
}

func geo(c city, dlat, dlon float64) *event.Geo {
	lat, lon := round2(c.lat+dlat), round2(c.lon+dlon)
	return &event.Geo{Country: c.country, Lat: &lat, Lon: &lon}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

var services = []string{"crm", "wiki", "tickets", "mail", "drive"}
var docTypes = []string{"customer_record", "document", "ticket", "invoice", "wiki_page"}

// userDay generates one user's benign day.
func (g *Generator) userDay(u *user, midnight time.Time) []*event.Event {
	if u.role == roleService {
		return g.serviceDay(u, midnight)
	}
	// Travel: rarely, a trip of a few days, mostly within the country's
	// region; the flight takes real time.
	if u.travel != nil && !midnight.Before(u.travel.to) {
		if midnight.Before(u.travel.back) {
			return nil // flying home
		}
		u.travel = nil
	}
	if u.travel == nil && g.rng.IntN(1000) < 3 {
		dest := g.rng.IntN(len(cities))
		if dest != u.city {
			// Leave at 23:30 local, after the day's work; the flight
			// (at 600 km/h plus 4 hours at airports) ends the trip's
			// silence; back home a few days later.
			hours := haversine(cities[u.city], cities[dest])/600 + 4
			depart := g.localTime(u, midnight, 23.5)
			arrive := depart.Add(time.Duration(hours * float64(time.Hour)))
			to := arrive.Truncate(24*time.Hour).AddDate(0, 0, 2+g.rng.IntN(4))
			u.travel = &trip{city: dest, depart: depart, from: arrive, to: to, back: to.Add(time.Duration(hours*float64(time.Hour)) + 24*time.Hour)}
		}
	}
	// Home address changes now and then (DHCP).
	if g.rng.IntN(100) < 2 {
		u.homeIP = g.poolAddr(u.city, 0)
	}
	if g.rng.IntN(100) < 10 {
		u.mobileIP = g.poolAddr(u.city, 1)
	}
	wd := g.localTime(u, midnight, 12).Weekday()
	weekend := wd == time.Saturday || wd == time.Sunday
	if weekend && g.rng.IntN(100) >= 12 {
		return nil
	}
	if !weekend && g.rng.IntN(100) < 5 { // leave, sick days
		return nil
	}
	var evs []*event.Event
	sessions := 1 + g.rng.IntN(2)
	if weekend {
		sessions = 1
	}
	for s := 0; s < sessions; s++ {
		hour := u.workStart + g.rng.NormFloat64()*0.4 + float64(s)*(u.workLen*0.55)
		where := 1
		if u.office < 0 || weekend || g.rng.IntN(100) < 35 {
			where = 0
		}
		if g.rng.IntN(100) < 15 {
			where = 2
		}
		t := g.localTime(u, midnight, hour)
		evs = append(evs, g.login(u, t, where)...)
		t = evs[len(evs)-1].Time
		n := 5 + g.rng.IntN(30)
		if weekend {
			n = 2 + g.rng.IntN(6)
		}
		for i := 0; i < n; i++ {
			t = t.Add(time.Duration(30+g.rng.IntN(600)) * time.Second)
			svc := services[g.rng.IntN(len(services))]
			action, outcome := "read", event.OutcomeSuccess
			switch r := g.rng.IntN(100); {
			case r < 8:
				action = "update"
			case r < 11:
				action = "create"
			case r < 13:
				action = "search"
			case r < 14:
				outcome = event.OutcomeFailure
			}
			ev := g.base(u, t, svc, action, event.CategoryDataAccess, outcome)
			g.place(u, ev, t, where)
			typ := docTypes[g.rng.IntN(len(docTypes))]
			if u.role == roleHR && g.rng.IntN(100) < 20 {
				typ, ev.Service = "payroll", "hr"
			}
			ev.Resource = &event.Resource{Type: typ, ID: fmt.Sprintf("%s-%d", typ, g.rng.IntN(50000))}
			evs = append(evs, ev)
		}
		if u.role == roleAdmin && !weekend {
			for i := 0; i < 2+g.rng.IntN(6); i++ {
				at := g.localTime(u, midnight, u.workStart+0.5+g.rng.Float64()*(u.workLen-1))
				u.adminHours[at.UTC().Hour()] = at
				ev := g.base(u, at, "iam", []string{"update", "create", "reset_password", "disable"}[g.rng.IntN(4)], event.CategoryAdmin, event.OutcomeSuccess)
				g.place(u, ev, at, where)
				ev.Resource = &event.Resource{Type: "user", ID: g.users[g.rng.IntN(len(g.users))].id}
				evs = append(evs, ev)
			}
		}
		if weekend {
			break
		}
	}
	if tr := u.travel; tr != nil {
		// Nothing while in the air.
		evs = slices.DeleteFunc(evs, func(e *event.Event) bool {
			return !e.Time.Before(tr.depart) && e.Time.Before(tr.from) || !e.Time.Before(tr.to) && e.Time.Before(tr.back)
		})
	}
	return evs
}

// login is a session start: sometimes after a typo or two, rarely with a
// mistyped user name first.
func (g *Generator) login(u *user, t time.Time, where int) []*event.Event {
	var evs []*event.Event
	mk := func(outcome, reason, id string) {
		ev := g.base(u, t, "sso", "login", event.CategoryAuthentication, outcome)
		g.place(u, ev, t, where)
		ev.Reason = reason
		if id != "" {
			ev.Actor.ID = id
		}
		mfa := outcome == event.OutcomeSuccess
		ev.MFA = &mfa
		evs = append(evs, ev)
		t = t.Add(time.Duration(4+g.rng.IntN(20)) * time.Second)
	}
	switch r := g.rng.IntN(1000); {
	case r < 3:
		mk(event.OutcomeFailure, "unknown_user", u.id[:len(u.id)-len("@corp.example")])
	case r < 40:
		mk(event.OutcomeFailure, "invalid_credentials", "")
	case r < 50:
		mk(event.OutcomeFailure, "invalid_credentials", "")
		mk(event.OutcomeFailure, "invalid_credentials", "")
	case r < 52:
		mk(event.OutcomeFailure, "mfa_failed", "")
	}
	mk(event.OutcomeSuccess, "", "")
	return evs
}

// serviceDay is a service account polling an API around the clock.
func (g *Generator) serviceDay(u *user, midnight time.Time) []*event.Event {
	var evs []*event.Event
	for t := midnight.Add(time.Duration(g.rng.IntN(60)) * time.Second); t.Before(midnight.Add(24 * time.Hour)); t = t.Add(time.Duration(30+g.rng.IntN(60)) * time.Second) {
		ev := g.base(u, t, "api", "read", event.CategoryDataAccess, event.OutcomeSuccess)
		ev.Resource = &event.Resource{Type: "customer_record", ID: fmt.Sprintf("c-%d", g.rng.IntN(100000))}
		evs = append(evs, ev)
	}
	return evs
}

func haversine(a, b city) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (b.lat-a.lat)*rad, (b.lon-a.lon)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(a.lat*rad)*math.Cos(b.lat*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}

// attacker addresses: rented servers in hosting networks.
var hostingASNs = []uint32{14061, 16276, 24940, 16509, 20473}

func (g *Generator) attackerAddr() (netip.Addr, uint32) {
	k := g.rng.IntN(len(hostingASNs))
	return netip.AddrFrom4([4]byte{byte(45 + k), byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))}), hostingASNs[k]
}

// victim picks an ordinary user (not admin, not service) who is at home
// and not travelling.
func (g *Generator) victim() *user {
	for {
		u := g.users[g.rng.IntN(len(g.users))]
		if u.role == roleStaff && u.travel == nil {
			return u
		}
	}
}

// inject generates one attack of scenario s on the day starting at
// midnight, and labels it.
func (g *Generator) inject(s int, midnight time.Time) []*event.Event {
	g.attack++
	n := 0
	var evs []*event.Event
	id := func() string {
		n++
		return fmt.Sprintf("atk-%d-%d", g.attack, n)
	}
	start := midnight.Add(time.Duration(2+g.rng.IntN(20)) * time.Hour).Add(time.Duration(g.rng.IntN(3600)) * time.Second)
	t := start
	ev := func(actor string, ip netip.Addr, asn uint32, c int, action, category, outcome, reason string) *event.Event {
		e := &event.Event{ID: id(), Time: t.UTC().Truncate(time.Millisecond), Service: "sso", Actor: event.Actor{ID: actor, Type: event.ActorUser},
			Source: event.Source{IP: ip, ASN: asn, UserAgent: "python-requests/2.32", Geo: geo(cities[c], 0, 0)},
			Action: action, Category: category, Outcome: outcome, Reason: reason}
		evs = append(evs, e)
		return e
	}
	fail := func(actor string, ip netip.Addr, asn uint32, reason string) {
		ev(actor, ip, asn, 7, "login", event.CategoryAuthentication, event.OutcomeFailure, reason)
	}
	switch Scenarios[s].Name {
	case "bruteforce_fast":
		ip, asn := g.attackerAddr()
		v := g.victim()
		for i := 0; i < 30; i++ {
			fail(v.id, ip, asn, "invalid_credentials")
			t = t.Add(time.Duration(1+g.rng.IntN(3)) * time.Second)
		}
	case "bruteforce_slow":
		ip, asn := g.attackerAddr()
		v := g.victim()
		for i := 0; i < 15; i++ {
			fail(v.id, ip, asn, "invalid_credentials")
			t = t.Add(time.Duration(40+g.rng.IntN(15)) * time.Second)
		}
	case "bruteforce_account_distributed":
		v := g.victim()
		for i := 0; i < 14; i++ {
			ip, asn := g.attackerAddr()
			fail(v.id, ip, asn, "invalid_credentials")
			t = t.Add(time.Duration(30+g.rng.IntN(90)) * time.Second)
		}
	case "password_spray_source":
		ip, asn := g.attackerAddr()
		for i := 0; i < 25; i++ {
			fail(g.victim().id, ip, asn, "invalid_credentials")
			t = t.Add(time.Duration(20+g.rng.IntN(60)) * time.Second)
		}
	case "password_spray_network":
		ip, asn := g.attackerAddr()
		b := ip.As4()
		for i := 0; i < 30; i++ {
			b[3] = byte(1 + g.rng.IntN(254))
			fail(g.victim().id, netip.AddrFrom4(b), asn, "invalid_credentials")
			t = t.Add(time.Duration(20+g.rng.IntN(40)) * time.Second)
		}
	case "credential_stuffing":
		for i := 0; i < 40; i++ {
			ip, asn := g.attackerAddr()
			fail(fmt.Sprintf("leaked%05d@mail.example", g.rng.IntN(100000)), ip, asn, "unknown_user")
			t = t.Add(time.Duration(3+g.rng.IntN(10)) * time.Second)
		}
	case "success_after_failures":
		v := g.victim()
		ip, asn := g.attackerAddr()
		for i := 0; i < 12; i++ {
			fail(v.id, ip, asn, "invalid_credentials")
			t = t.Add(time.Duration(5+g.rng.IntN(10)) * time.Second)
		}
		ev(v.id, ip, asn, 7, "login", event.CategoryAuthentication, event.OutcomeSuccess, "")
	case "user_enumeration":
		ip, asn := g.attackerAddr()
		for _, name := range []string{"admin", "root", "test", "guest", "info", "support", "sales", "oracle", "backup", "ftp"} {
			fail(name, ip, asn, "unknown_user")
			t = t.Add(time.Duration(5+g.rng.IntN(30)) * time.Second)
		}
	case "login_from_reserved_range":
		ev(g.victim().id, netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + g.rng.IntN(254))}), 0, 7, "login", event.CategoryAuthentication, event.OutcomeFailure, "invalid_credentials")
	case "new_country", "new_asn", "impossible_travel":
		v := g.victim()
		far := (v.city + len(cities)/2) % len(cities)
		if Scenarios[s].Name == "impossible_travel" {
			home := g.base(v, t, "sso", "login", event.CategoryAuthentication, event.OutcomeSuccess)
			home.ID = id()
			evs = append(evs, home)
			t = t.Add(time.Duration(20+g.rng.IntN(60)) * time.Minute)
		}
		ip, asn := g.attackerAddr()
		c := far
		if Scenarios[s].Name == "new_asn" {
			c = v.city // same country, new network: a hosting provider
		}
		e := ev(v.id, ip, asn, c, "login", event.CategoryAuthentication, event.OutcomeSuccess, "")
		e.Service = "sso"
	case "admin_unusual_hour":
		admins := g.byRole(roleAdmin)
		if len(admins) == 0 {
			return nil
		}
		// Another admin each time (for one who already acted at that
		// hour recently, it is no longer unusual), one at home.
		a := admins[g.attack%len(admins)]
		for i := 0; a.travel != nil && i < len(admins); i++ {
			a = admins[(g.attack+i)%len(admins)]
		}
		// In the small hours at home, and at least three hours from any
		// hour the admin worked in the last 30 days (abroad included).
		hour := -1
		for _, local := range []int{3, 2, 4, 1, 5, 0, 23, 22} {
			h := ((local-int(cities[a.city].utc))%24 + 24) % 24
			clear := true
			for d := -3; d <= 3; d++ {
				if seen := a.adminHours[((h+d)%24+24)%24]; !seen.IsZero() && midnight.Sub(seen) < 30*24*time.Hour {
					clear = false
				}
			}
			if clear {
				hour = h
				break
			}
		}
		if hour < 0 {
			return nil
		}
		t = midnight.Add(time.Duration(hour)*time.Hour + time.Duration(g.rng.IntN(3000))*time.Second)
		for i := 0; i < 3; i++ {
			e := g.base(a, t, "iam", "disable", event.CategoryAdmin, event.OutcomeSuccess)
			e.ID = id()
			e.Resource = &event.Resource{Type: "mfa_policy", ID: fmt.Sprint(i)}
			evs = append(evs, e)
			t = t.Add(time.Minute)
		}
	case "grant_then_sensitive_access":
		admins := g.byRole(roleAdmin)
		if len(admins) == 0 {
			return nil
		}
		a, v := admins[g.rng.IntN(len(admins))], g.victim()
		e := g.base(a, t, "iam", "grant", event.CategoryAdmin, event.OutcomeSuccess)
		e.ID, e.Resource = id(), &event.Resource{Type: "user", ID: v.id}
		evs = append(evs, e)
		t = t.Add(time.Duration(5+g.rng.IntN(30)) * time.Minute)
		e = g.base(v, t, "hr", "export", event.CategoryDataAccess, event.OutcomeSuccess)
		e.ID, e.Resource = id(), &event.Resource{Type: "payroll", ID: "2026"}
		evs = append(evs, e)
	case "mass_data_access":
		v := g.victim()
		for i := 0; i < 1500; i++ {
			e := g.base(v, t, "crm", "export", event.CategoryDataAccess, event.OutcomeSuccess)
			e.ID, e.Resource = id(), &event.Resource{Type: "customer_record", ID: fmt.Sprintf("c-%d", i)}
			evs = append(evs, e)
			t = t.Add(time.Duration(500+g.rng.IntN(1500)) * time.Millisecond)
		}
	case "rate_spike":
		v := g.victim()
		for i := 0; i < 1200; i++ {
			e := g.base(v, t, "api", "search", event.CategoryDataAccess, event.OutcomeSuccess)
			e.ID, e.Resource = id(), &event.Resource{Type: "ticket", ID: fmt.Sprint(i)}
			evs = append(evs, e)
			t = t.Add(time.Duration(100+g.rng.IntN(300)) * time.Millisecond)
		}
	case "audit_log_tampering":
		v := g.victim()
		e := g.base(v, t, "siem", "delete", event.CategoryAdmin, event.OutcomeSuccess)
		e.ID, e.Resource = id(), &event.Resource{Type: "audit_log", ID: "2026-q1"}
		evs = append(evs, e)
	case "audit_log_access":
		v := g.victim()
		e := g.base(v, t, "siem", "export", event.CategoryDataAccess, event.OutcomeSuccess)
		e.ID, e.Resource = id(), &event.Resource{Type: "audit_log", ID: "2026-q1"}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return nil
	}
	l := Label{Scenario: Scenarios[s].Name, Rule: Scenarios[s].Rule, Start: evs[0].Time, End: evs[0].Time}
	for _, e := range evs {
		l.EventIDs = append(l.EventIDs, e.ID)
		l.Start = minTime(l.Start, e.Time)
		l.End = maxTime(l.End, e.Time)
	}
	g.labels = append(g.labels, l)
	return evs
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// SortLabels orders labels by start time.
func SortLabels(ls []Label) {
	slices.SortFunc(ls, func(a, b Label) int { return cmp.Compare(a.Start.UnixNano(), b.Start.UnixNano()) })
}
