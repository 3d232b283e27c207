package detect

import (
	"testing"
	"time"
)

// TestMatch runs detection sections (the Sigma specification's examples,
// in accessledger's taxonomy) over events.
func TestMatch(t *testing.T) {
	lists := Lists{
		"vip_users":  {"alice", "bob"},
		"deny_cidrs": {"198.51.100.0/24", "2001:db8:bad::/48"},
		"hosting":    {"16509", "14061"},
		"admins":     {"adm-*"},
	}
	tests := []struct {
		name      string
		detection string
		event     map[string]any
		want      bool
	}{
		{"map ANDs fields", "sel:\n  action: login\n  outcome: failure\ncondition: sel", nil, true},
		{"map ANDs fields, one differs", "sel:\n  action: login\n  outcome: success\ncondition: sel", nil, false},
		{"list of values ORs", "sel:\n  outcome:\n    - success\n    - failure\ncondition: sel", nil, true},
		{"list of maps ORs", "sel:\n  - outcome: success\n  - reason: invalid_credentials\ncondition: sel", nil, true},
		{"case-insensitive by default", "sel:\n  actor.id: ALICE\ncondition: sel", nil, true},
		{"cased", "sel:\n  actor.id|cased: ALICE\ncondition: sel", nil, false},
		{"cased matches exact case", "sel:\n  actor.id|cased: alice\ncondition: sel", nil, true},
		{"wildcard *", "sel:\n  source.user_agent: 'moz*'\ncondition: sel", nil, true},
		{"wildcard ?", "sel:\n  actor.id: 'al?ce'\ncondition: sel", nil, true},
		{"wildcard in the middle", "sel:\n  source.user_agent: 'M*a/5.?'\ncondition: sel", nil, true},
		{"escaped wildcard is literal", "sel:\n  actor.id: 'al\\*'\ncondition: sel", map[string]any{"actor": map[string]any{"id": "al*"}}, true},
		{"escaped wildcard does not glob", "sel:\n  actor.id: 'al\\*'\ncondition: sel", nil, false},
		{"double backslash then wildcard", "sel:\n  actor.id: 'a\\\\*'\ncondition: sel", map[string]any{"actor": map[string]any{"id": `a\xyz`}}, true},
		{"plain backslash", "sel:\n  actor.id: 'dom\\user'\ncondition: sel", map[string]any{"actor": map[string]any{"id": `dom\user`}}, true},
		{"contains", "sel:\n  source.user_agent|contains: 'ILLA/5'\ncondition: sel", nil, true},
		{"startswith", "sel:\n  source.user_agent|startswith: Mozilla\ncondition: sel", nil, true},
		{"endswith", "sel:\n  source.user_agent|endswith: '5.0'\ncondition: sel", nil, true},
		{"endswith misses", "sel:\n  source.user_agent|endswith: Mozilla\ncondition: sel", nil, false},
		{"contains all", "sel:\n  source.user_agent|contains|all:\n    - Moz\n    - '5.0'\ncondition: sel", nil, true},
		{"contains all, one missing", "sel:\n  source.user_agent|contains|all:\n    - Moz\n    - curl\ncondition: sel", nil, false},
		{"re", "sel:\n  actor.id|re: '^a[a-z]+e$'\ncondition: sel", nil, true},
		{"re is case-sensitive", "sel:\n  actor.id|re: '^ALICE$'\ncondition: sel", nil, false},
		{"re|i", "sel:\n  actor.id|re|i: '^ALICE$'\ncondition: sel", nil, true},
		{"cidr v4", "sel:\n  source.ip|cidr: 203.0.113.0/24\ncondition: sel", nil, true},
		{"cidr v4 misses", "sel:\n  source.ip|cidr: 10.0.0.0/8\ncondition: sel", nil, false},
		{"cidr v6", "sel:\n  source.ip|cidr: '2001:db8::/32'\ncondition: sel", map[string]any{"source": map[string]any{"ip": "2001:db8::5"}}, true},
		{"ip equality is canonical", "sel:\n  source.ip: '2001:DB8:0::5'\ncondition: sel", map[string]any{"source": map[string]any{"ip": "2001:db8::5"}}, true},
		{"exists true", "sel:\n  reason|exists: true\ncondition: sel", nil, true},
		{"exists false", "sel:\n  resource.type|exists: false\ncondition: sel", nil, true},
		{"null is absent", "sel:\n  resource.id: null\ncondition: sel", nil, true},
		{"null on present field", "sel:\n  reason: null\ncondition: sel", nil, false},
		{"empty string is absent", "sel:\n  tenant: ''\ncondition: sel", nil, true},
		{"number equality", "sel:\n  source.asn: 64500\ncondition: sel", map[string]any{"source": map[string]any{"asn": 64500}}, true},
		{"number as string", "sel:\n  source.asn: '64500'\ncondition: sel", map[string]any{"source": map[string]any{"asn": 64500}}, true},
		{"gt", "sel:\n  source.port|gt: 1024\ncondition: sel", map[string]any{"source": map[string]any{"port": 5000}}, true},
		{"lte", "sel:\n  source.port|lte: 1024\ncondition: sel", map[string]any{"source": map[string]any{"port": 5000}}, false},
		{"absent number never compares", "sel:\n  source.port|lt: 1024\ncondition: sel", nil, false},
		{"neq", "sel:\n  outcome|neq: success\ncondition: sel", nil, true},
		{"neq equal", "sel:\n  outcome|neq: failure\ncondition: sel", nil, false},
		{"neq on absent field", "sel:\n  tenant|neq: acme\ncondition: sel", nil, true},
		// Found by review: '' matches an absent field, so neq '' must not.
		{"neq '' on absent field", "sel:\n  reason|neq: ''\ncondition: sel", map[string]any{"reason": nil}, false},
		{"neq '' on present field", "sel:\n  reason|neq: ''\ncondition: sel", nil, true},
		{"neq of values with '' on absent field", "sel:\n  reason|neq: [x, '']\ncondition: sel", map[string]any{"reason": nil}, false},
		{"not '' on absent field", "sel:\n  reason: ''\ncondition: not sel", map[string]any{"reason": nil}, false},
		{"not '' on present field", "sel:\n  reason: ''\ncondition: not sel", nil, true},
		{"neq number", "sel:\n  source.port|neq: 443\ncondition: sel", map[string]any{"source": map[string]any{"port": 443}}, false},
		{"bool", "sel:\n  mfa: false\ncondition: sel", map[string]any{"mfa": false}, true},
		{"bool absent", "sel:\n  mfa: false\ncondition: sel", nil, false},
		{"attribute", "sel:\n  attributes.device|startswith: ios\ncondition: sel", map[string]any{"attributes": map[string]any{"device": "iOS-17"}}, true},
		{"hour in UTC", "sel:\n  time|hour: 10\ncondition: sel", nil, true},
		{"hour range", "sel:\n  time|hour|gte: 22\ncondition: sel", map[string]any{"time": "2026-01-05T23:30:00Z"}, true},
		{"weekday (Monday is 1)", "sel:\n  time|weekday: 1\ncondition: sel", nil, true},
		{"weekend", "sel:\n  time|weekday|gte: 6\ncondition: sel", nil, false},
		{"expand list", "sel:\n  actor.id|expand: '%vip_users%'\ncondition: sel", nil, true},
		{"expand list misses", "sel:\n  actor.id|expand: '%vip_users%'\ncondition: sel", map[string]any{"actor": map[string]any{"id": "carol"}}, false},
		{"expand cidr list", "sel:\n  source.ip|cidr|expand: '%deny_cidrs%'\ncondition: sel", map[string]any{"source": map[string]any{"ip": "198.51.100.9"}}, true},
		{"expand numbers", "sel:\n  source.asn|expand: '%hosting%'\ncondition: sel", map[string]any{"source": map[string]any{"asn": 14061}}, true},
		{"expand with wildcard values", "sel:\n  actor.id|expand: '%admins%'\ncondition: sel", map[string]any{"actor": map[string]any{"id": "adm-root"}}, true},
		{"expand in a string", "sel:\n  actor.id|expand: 'svc-%vip_users%'\ncondition: sel", map[string]any{"actor": map[string]any{"id": "svc-bob"}}, true},
		{"not", "sel:\n  outcome: success\ncondition: not sel", nil, true},
		{"and not", "sel:\n  action: login\nfilter:\n  actor.id: alice\ncondition: sel and not filter", nil, false},
		{"brackets", "a:\n  action: logout\nb:\n  outcome: failure\nc:\n  actor.id: alice\ncondition: (a or b) and c", nil, true},
		{"precedence: and binds tighter", "a:\n  action: logout\nb:\n  outcome: failure\nc:\n  actor.id: carol\ncondition: a or b and c", nil, false},
		{"not binds tighter than and", "a:\n  action: logout\nb:\n  outcome: failure\ncondition: not a and b", nil, true},
		{"1 of pattern", "selection_a:\n  action: logout\nselection_b:\n  outcome: failure\ncondition: 1 of selection_*", nil, true},
		{"all of pattern", "selection_a:\n  action: logout\nselection_b:\n  outcome: failure\ncondition: all of selection_*", nil, false},
		{"all of them", "a:\n  action: login\nb:\n  outcome: failure\ncondition: all of them", nil, true},
		{"them skips underscore", "a:\n  action: login\n_b:\n  outcome: success\ncondition: all of them", nil, true},
		{"1 of them and not 1 of filter", "sel:\n  action: login\nfilter_a:\n  actor.id: bob\nfilter_b:\n  actor.id: carol\ncondition: sel and not 1 of filter_*", nil, true},
		{"condition list ORs", "a:\n  action: logout\nb:\n  outcome: failure\ncondition:\n  - a\n  - b", nil, true},
		{"unicode case folding", "sel:\n  actor.id: 'ÉLODIE'\ncondition: sel", map[string]any{"actor": map[string]any{"id": "élodie"}}, true},
		{"many exact values", "sel:\n  actor.id: [a, b, c, d, e, f, g, h, i, j, ALICE]\ncondition: sel", nil, true},
		// Found by probing the engine against the Sigma spec.
		{"exists True (YAML bool)", "sel:\n  reason|exists: True\ncondition: sel", nil, true},
		{"exists TRUE on absent field", "sel:\n  tenant|exists: TRUE\ncondition: sel", nil, false},
		{"many exact values with '' match an absent field", "sel:\n  tenant: ['', a, b, c, d, e, f, g, h]\ncondition: sel", nil, true},
		{"many exact values without '' do not", "sel:\n  tenant: [i, a, b, c, d, e, f, g, h]\ncondition: sel", nil, false},
		{"cidr of mapped IPv4", "sel:\n  source.ip|cidr: '::ffff:203.0.113.0/120'\ncondition: sel", nil, true},
		{"cidr of a mapped IPv4 address", "sel:\n  source.ip|cidr: '::ffff:203.0.113.7'\ncondition: sel", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := compileYAML(t, detectionRule(tt.detection), Config{Lists: lists})
			got := len(e.Process(rec(mkEvent(t, tt.event), 0))) == 1
			if got != tt.want {
				t.Errorf("match(%q, %v) = %v, want %v", tt.detection, tt.event, got, tt.want)
			}
		})
	}
}

func TestMatchTimezone(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	e := compileYAML(t, detectionRule("sel:\n  time|hour: 11\ncondition: sel"), Config{Location: paris})
	if got := len(e.Process(rec(mkEvent(t, nil), 0))); got != 1 {
		t.Errorf("10:00Z in Europe/Paris: hour 11 matched %d times, want 1", got)
	}
}

func TestLogsource(t *testing.T) {
	src := "title: t\nid: r1\nlogsource: {product: accessledger, category: admin, service: SSO}\ndetection:\n  sel: {action: login}\n  condition: sel\n"
	e := compileYAML(t, src, Config{})
	for _, tt := range []struct {
		over map[string]any
		want int
	}{
		{map[string]any{"category": "admin"}, 1},
		{map[string]any{"category": "authentication"}, 0},
		{map[string]any{"category": "admin", "service": "vpn"}, 0},
	} {
		if got := len(e.Process(rec(mkEvent(t, tt.over), 0))); got != tt.want {
			t.Errorf("Process(%v) = %d alerts, want %d", tt.over, got, tt.want)
		}
	}
}

func TestExceptions(t *testing.T) {
	src := detectionRule("sel: {action: login}\ncondition: sel") + "exceptions:\n  - reason: office\n    match:\n      source.ip|cidr: 203.0.113.0/24\n"
	e := compileYAML(t, src, Config{})
	if got := len(e.Process(rec(mkEvent(t, nil), 0))); got != 0 {
		t.Errorf("excepted event raised %d alerts, want 0", got)
	}
	if got := len(e.Process(rec(mkEvent(t, map[string]any{"source": map[string]any{"ip": "192.0.2.1"}}), 1))); got != 1 {
		t.Errorf("other event raised %d alerts, want 1", got)
	}
}

func TestIPSet(t *testing.T) {
	lists := Lists{"big": nil}
	for i := 0; i < 2000; i++ {
		lists["big"] = append(lists["big"], "10."+itoa(i/256)+"."+itoa(i%256)+".0/24")
	}
	lists["big"] = append(lists["big"], "0.0.0.0/32", "::/0")
	e := compileYAML(t, detectionRule("sel:\n  source.ip|cidr|expand: '%big%'\ncondition: sel"), Config{Lists: lists})
	for _, tt := range []struct {
		ip   string
		want int
	}{{"10.7.207.9", 1}, {"10.8.0.1", 0}, {"11.0.0.1", 0}, {"2001:db8::1", 1}} {
		got := len(e.Process(rec(mkEvent(t, map[string]any{"source": map[string]any{"ip": tt.ip}}), 0)))
		if got != tt.want {
			t.Errorf("cidr list on %s = %d, want %d", tt.ip, got, tt.want)
		}
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}
