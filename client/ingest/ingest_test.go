package ingest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/accessledger/accessledger/client/ingest"
	"github.com/accessledger/accessledger/event"
)

var cfg = ingest.Config{
	Now:      func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
	Location: time.UTC,
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, format, line                              string
		actor, ip, action, outcome, reason, service, at string
		port                                            uint16
	}{
		{"FailedPassword", "sshd", "Nov 27 10:00:01 bastion sshd[1234]: Failed password for root from 203.0.113.7 port 51234 ssh2",
			"root", "203.0.113.7", "login", "failure", "invalid_credentials", "sshd", "2026-11-27T10:00:01Z", 51234},
		{"FailedInvalidUser", "sshd", "Nov  3 09:01:02 bastion sshd[99]: Failed password for invalid user admin from 2001:db8::5 port 40000 ssh2",
			"admin", "2001:db8::5", "login", "failure", "unknown_user", "sshd", "2026-11-03T09:01:02Z", 40000},
		{"InvalidUser", "sshd", "Nov 27 10:00:00 bastion sshd[1234]: Invalid user oracle from 198.51.100.9 port 50001",
			"oracle", "198.51.100.9", "login", "failure", "unknown_user", "sshd", "2026-11-27T10:00:00Z", 50001},
		{"InvalidUserNoPort", "sshd", "Nov 27 10:00:00 bastion sshd[1234]: Invalid user oracle from 198.51.100.9",
			"oracle", "198.51.100.9", "login", "failure", "unknown_user", "sshd", "2026-11-27T10:00:00Z", 0},
		{"AcceptedPublickey", "sshd", "Nov 27 10:05:00 bastion sshd[77]: Accepted publickey for alice from 192.0.2.10 port 22022 ssh2: ED25519 SHA256:abc",
			"alice", "192.0.2.10", "login", "success", "", "sshd", "2026-11-27T10:05:00Z", 22022},
		{"AcceptedPasswordSession", "sshd", "Nov 27 10:05:00 bastion sshd-session[77]: Accepted password for bob from 192.0.2.11 port 22023 ssh2",
			"bob", "192.0.2.11", "login", "success", "", "sshd", "2026-11-27T10:05:00Z", 22023},
		{"Disconnected", "sshd", "Nov 27 11:00:00 bastion sshd[77]: Disconnected from user alice 192.0.2.10 port 22022",
			"alice", "192.0.2.10", "logout", "success", "", "sshd", "2026-11-27T11:00:00Z", 22022},
		{"DisconnectedPreauth", "sshd", "Nov 27 11:00:00 bastion sshd[78]: Disconnected from invalid user oracle 198.51.100.9 port 50001 [preauth]",
			"oracle", "198.51.100.9", "logout", "failure", "disconnected_before_authentication", "sshd", "2026-11-27T11:00:00Z", 50001},
		{"ShortISO", "sshd", "2026-11-27T10:00:01+0100 bastion sshd[1234]: Failed password for root from 203.0.113.7 port 51234 ssh2",
			"root", "203.0.113.7", "login", "failure", "invalid_credentials", "sshd", "2026-11-27T09:00:01Z", 51234},
		{"RFC3339", "sshd", "2026-11-27T10:00:01.123456+00:00 bastion sshd[1234]: Accepted publickey for carol from 203.0.113.8 port 2 ssh2",
			"carol", "203.0.113.8", "login", "success", "", "sshd", "2026-11-27T10:00:01.123456Z", 2},
		{"DecemberInJanuary", "sshd", "Dec 31 23:59:59 bastion sshd[1]: Invalid user x from 192.0.2.1 port 1",
			"x", "192.0.2.1", "login", "failure", "unknown_user", "sshd", "2025-12-31T23:59:59Z", 1},
		{"Combined", "combined", `203.0.113.7 - alice [27/Nov/2026:10:00:00 +0000] "GET /invoices/42?x=1 HTTP/1.1" 200 512 "https://example.com/" "Mozilla/5.0 (X11)"`,
			"alice", "203.0.113.7", "read", "success", "", "http", "2026-11-27T10:00:00Z", 0},
		{"CombinedAnonymousFailure", "combined", `2001:db8::1 - - [27/Nov/2026:11:00:00 +0200] "DELETE /admin HTTP/2.0" 403 0 "-" "curl/8"`,
			"anonymous", "2001:db8::1", "delete", "failure", "http_403", "http", "2026-11-27T09:00:00Z", 0},
		{"Common", "combined", `192.0.2.1 - - [27/Nov/2026:10:00:00 +0000] "POST /login HTTP/1.0" 302 -`,
			"anonymous", "192.0.2.1", "create", "success", "", "http", "2026-11-27T10:00:00Z", 0},
		{"BadRequestLine", "combined", `192.0.2.1 - - [27/Nov/2026:10:00:00 +0000] "-" 400 0 "-" "-"`,
			"anonymous", "192.0.2.1", "request", "failure", "http_400", "http", "2026-11-27T10:00:00Z", 0},
		{"JSONL", "jsonl", `{"time":"2026-11-27T10:00:00Z","service":"vpn","actor":{"id":"dave"},"source":{"ip":"192.0.2.4"},"action":"login","category":"authentication","outcome":"success"}`,
			"dave", "192.0.2.4", "login", "success", "", "vpn", "2026-11-27T10:00:00Z", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f, ok := ingest.Detect([]byte(tc.line)); !ok || f != tc.format {
				t.Errorf("Detect() = %q, %v, want %q", f, ok, tc.format)
			}
			ev, err := ingest.Parse(tc.format, []byte(tc.line), cfg)
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			at, _ := time.Parse(time.RFC3339Nano, tc.at)
			if ev.Actor.ID != tc.actor || ev.Source.IP.String() != tc.ip || ev.Action != tc.action || ev.Outcome != tc.outcome ||
				ev.Reason != tc.reason || ev.Service != tc.service || !ev.Time.Equal(at) || ev.Source.Port != tc.port {
				t.Errorf("Parse() = %+v, want actor %s ip %s action %s outcome %s reason %q service %s time %s port %d",
					ev, tc.actor, tc.ip, tc.action, tc.outcome, tc.reason, tc.service, tc.at, tc.port)
			}
			// What Parse returns is a valid event.
			if _, err := event.Parse(ev.Canonical(), event.ParseOptions{}); err != nil {
				t.Errorf("event.Parse(Canonical()) = %v", err)
			}
		})
	}
}

// TestDetectAuthLog: a /var/log/auth.log that begins with another
// program's line is read as sshd (it was an error on every line until the
// first sshd one, and on each later line of another program).
func TestDetectAuthLog(t *testing.T) {
	for _, line := range []string{
		"Nov 29 09:17:01 host CRON[1234]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
		"2026-11-29T09:19:00+00:00 host sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
	} {
		if f, ok := ingest.Detect([]byte(line)); !ok || f != ingest.FormatSSHD {
			t.Errorf("Detect(%q) = %q, %v; want sshd", line, f, ok)
		}
	}
}

func TestParseRejectsAndSkips(t *testing.T) {
	for _, tc := range []struct {
		name, format, line string
		skip               bool
	}{
		{"SessionOpened", "sshd", "Nov 27 10:05:00 bastion sshd[77]: pam_unix(sshd:session): session opened for user alice", true},
		{"ConnectionClosed", "sshd", "Nov 27 10:05:00 bastion sshd[77]: Connection closed by 192.0.2.1 port 1 [preauth]", true},
		{"Empty", "sshd", "   ", true},
		// The other programs of /var/log/auth.log, in both time formats.
		{"Cron", "sshd", "Nov 29 09:17:01 host CRON[1234]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", true},
		{"Sudo", "sshd", "Nov 29 09:19:00 host sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/ls", true},
		{"Logind", "sshd", "Nov 29 09:19:01 host systemd-logind[555]: New session 5 of user alice.", true},
		{"ISOCron", "sshd", "2026-11-29T09:17:01.123456+00:00 host CRON[1234]: pam_unix(cron:session): session closed for user root", true},
		{"SyslogTimeNoTag", "sshd", "Nov 29 09:17:01 host", false},
		{"NotSyslog", "sshd", "garbage line", false},
		{"BadAddress", "sshd", "Nov 27 10:05:00 bastion sshd[77]: Invalid user x from not-an-ip port 1", false},
		{"NotCombined", "combined", "GET /index.html", false},
		{"HostnameNotIP", "combined", `www.example.com - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"`, false},
		{"BadTime", "combined", `192.0.2.1 - - [27/Nov/2026 10:00:00] "GET / HTTP/1.1" 200 1 "-" "-"`, false},
		{"JSONLInvalid", "jsonl", `{"time":"2026-11-27T10:00:00Z"}`, false},
		{"JSONLBroken", "jsonl", `{"time":`, false},
		{"UnknownFormat", "xml", `<event/>`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ingest.Parse(tc.format, []byte(tc.line), cfg)
			if tc.skip && !errors.Is(err, ingest.ErrSkip) {
				t.Errorf("Parse() = %+v, %v, want ErrSkip", ev, err)
			}
			if !tc.skip && (err == nil || errors.Is(err, ingest.ErrSkip)) {
				t.Errorf("Parse() = %+v, %v, want an error", ev, err)
			}
		})
	}
}

// TestParseCleansWhatClientsSend: a user name, path, method, referer or
// user agent holding control characters or invalid UTF-8 (servers that do
// not escape them log them raw) becomes an event the log accepts, with
// '?' in their place, instead of a line the log refuses: a refused line
// would keep the access out of the log. Found by FuzzParse.
func TestParseCleansWhatClientsSend(t *testing.T) {
	for _, tc := range []struct{ format, line string }{
		{ingest.FormatCombined, "203.0.113.7 - al\x01ice [27/Nov/2026:10:00:00 +0000] \"G\x02T /a\x00b\xff HTTP/1.1\" 200 5 \"http://r\x1b/\" \"Mozilla\x7f/5.0\""},
		{ingest.FormatSSHD, "Nov 27 10:00:01 bas\x01tion sshd[1]: Failed pass\x06word for root from 203.0.113.7 port 22 ssh2"},
	} {
		ev, err := ingest.Parse(tc.format, []byte(tc.line), cfg)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", tc.line, err)
		}
		if _, err := event.Parse(ev.Canonical(), event.ParseOptions{Now: cfg.Now()}); err != nil {
			t.Errorf("Parse(%q) = %s, which the log refuses: %v", tc.line, ev.Canonical(), err)
		}
	}
	ev, _ := ingest.Parse(ingest.FormatCombined, []byte("203.0.113.7 - al\x01ice [27/Nov/2026:10:00:00 +0000] \"GET /a\x00b HTTP/1.1\" 200 5 \"-\" \"UA\x7f\""), cfg)
	if ev == nil || ev.Actor.ID != "al?ice" || ev.Resource.ID != "/a?b" || ev.Source.UserAgent != "UA?" {
		t.Errorf("Parse() = %s, want actor al?ice, path /a?b, user agent UA?", ev.Canonical())
	}
}

// TestParseStripsRefererQuery: the referer is kept without its query and
// fragment, as the path is: a referer's query can hold what a user
// searched for or a token, and the log keeps it for good.
func TestParseStripsRefererQuery(t *testing.T) {
	for referer, want := range map[string]string{
		"https://example.com/search?q=hiv+test&session=abc#results": "https://example.com/search",
		"https://example.com/a#frag?x":                              "https://example.com/a",
		"https://example.com/reset?token=s3cr3t":                    "https://example.com/reset",
		"https://example.com/":                                      "https://example.com/",
	} {
		line := `203.0.113.7 - alice [27/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "` + referer + `" "UA"`
		ev, err := ingest.Parse(ingest.FormatCombined, []byte(line), cfg)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", line, err)
		}
		if got := ev.Attributes["referer"]; got != want {
			t.Errorf("referer %q recorded as %q, want %q", referer, got, want)
		}
	}
}
