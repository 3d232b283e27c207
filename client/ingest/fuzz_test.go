package ingest_test

import (
	"errors"
	"testing"

	"github.com/accessledger/accessledger/client/ingest"
	"github.com/accessledger/accessledger/event"
)

// FuzzParse: log lines are written by whoever reaches the service (a user
// agent, a path, an sshd user name), so no line may make Parse panic, and
// an event it returns must be one the server accepts: its canonical JSON
// parses back as an event, under the same clock.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Nov 27 10:00:01 bastion sshd[1234]: Failed password for root from 203.0.113.7 port 51234 ssh2",
		"Nov  3 09:01:02 bastion sshd[99]: Failed password for invalid user admin from 2001:db8::5 port 40000 ssh2",
		"Nov 27 10:00:00 bastion sshd[1234]: Invalid user oracle from 198.51.100.9",
		"Nov 27 10:05:00 bastion sshd-session[77]: Accepted publickey for alice from 192.0.2.10 port 22022 ssh2: ED25519 SHA256:abc",
		"Nov 27 11:00:00 bastion sshd[78]: Disconnected from invalid user oracle 198.51.100.9 port 50001 [preauth]",
		"2026-11-27T10:00:00.123456+00:00 bastion sshd[5]: Accepted password for bob from 192.0.2.11 port 22023 ssh2",
		`203.0.113.7 - alice [27/Nov/2026:10:00:00 +0000] "GET /invoices/42?x=1 HTTP/1.1" 200 512 "https://example.com/" "Mozilla/5.0 (X11)"`,
		`2001:db8::1 - - [27/Nov/2026:11:00:00 +0200] "DELETE /admin HTTP/2.0" 403 0 "-" "curl/8"`,
		`192.0.2.1 - - [27/Nov/2026:10:00:00 +0000] "POST /login HTTP/1.0" 302 -`,
		`{"time":"2026-11-27T10:00:00Z","service":"s","actor":{"id":"a"},"source":{"ip":"::1"},"action":"read","category":"data_access","outcome":"success"}`,
	} {
		format, _ := ingest.Detect([]byte(s))
		f.Add(format, []byte(s))
	}
	f.Fuzz(func(t *testing.T, format string, line []byte) {
		ev, err := ingest.Parse(format, line, cfg)
		if err != nil {
			if ev != nil {
				t.Errorf("Parse(%q, %q) = an event and %v", format, line, err)
			}
			return
		}
		if ev == nil {
			t.Fatalf("Parse(%q, %q) = nil, nil", format, line)
		}
		// The caller checks the event as the log will and reports the
		// line if it is refused. The time is the line's to get wrong;
		// anything else the log refuses, the parser should have
		// cleaned (or refused) itself, or an attacker's user agent or
		// path could keep the access out of the log.
		canon := ev.Canonical()
		_, err = event.Parse(canon, event.ParseOptions{Now: cfg.Now()})
		var ve *event.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Fields {
				if fe.Field != "time" {
					t.Errorf("Parse(%q, %q) = an event the log refuses: %v\n%s", format, line, err, canon)
				}
			}
		} else if err != nil {
			t.Errorf("Parse(%q, %q) = an event the log refuses: %v\n%s", format, line, err, canon)
		}
	})
}
