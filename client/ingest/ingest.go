// Package ingest turns lines of the logs that already exist into access
// events: JSON Lines of events, nginx/Apache "combined" (and "common")
// access logs, and OpenSSH sshd authentication messages in syslog or
// journald short formats. It parses only; sending is the client's.
package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/accessledger/accessledger/event"
)

// Formats.
const (
	FormatJSONL    = "jsonl"
	FormatCombined = "combined"
	FormatSSHD     = "sshd"
)

// ErrSkip means a line is well formed but records no access (an sshd
// message other than a login, a failure or a logout; an empty line).
var ErrSkip = errors.New("ingest: no access event in this line")

// Config says how lines become events.
type Config struct {
	// Service is the events' service; empty: "http" for access logs,
	// "sshd" for sshd (JSONL events carry their own).
	Service string
	// Now is the current time (default time.Now): JSONL events dated too
	// far after it are rejected, and syslog times, which have no year,
	// take the year that puts them at most a day after it.
	Now func() time.Time
	// Location is the time zone of syslog times, which carry none
	// (default time.Local).
	Location *time.Location
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Detect guesses the format of a log from one of its lines.
func Detect(line []byte) (string, bool) {
	line = bytes.TrimSpace(line)
	switch {
	case len(line) > 0 && line[0] == '{':
		return FormatJSONL, true
	case combinedRE.Match(line):
		return FormatCombined, true
	case syslogRE.Match(line) || isoSyslogRE.Match(line) || otherSyslogRE.Match(line):
		return FormatSSHD, true
	}
	return "", false
}

// Parse turns one line (without its newline) into an event. It returns
// ErrSkip for a line with no access in it, and another error, saying
// why, for a line it cannot read.
func Parse(format string, line []byte, cfg Config) (*event.Event, error) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, ErrSkip
	}
	switch format {
	case FormatJSONL:
		return event.Parse(line, event.ParseOptions{Now: cfg.now(), Receiving: true})
	case FormatCombined:
		return parseCombined(string(line), cfg)
	case FormatSSHD:
		return parseSSHD(string(line), cfg)
	}
	return nil, fmt.Errorf("unknown format %q (want jsonl, combined or sshd)", format)
}

// combinedRE is the combined log format (the common one without the
// referer and user agent):
// host ident user [time] "request" status bytes ["referer" "user agent"].
var combinedRE = regexp.MustCompile(`^(\S+) \S+ (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?`)

func parseCombined(line string, cfg Config) (*event.Event, error) {
	m := combinedRE.FindStringSubmatch(line)
	if m == nil {
		return nil, errors.New(`not a combined log line (host ident user [time] "request" status bytes "referer" "user agent")`)
	}
	ip, err := netip.ParseAddr(m[1])
	if err != nil {
		return nil, fmt.Errorf("client address %q is not an IP address", m[1])
	}
	t, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[3])
	if err != nil {
		return nil, fmt.Errorf("time %q is not dd/Mon/yyyy:hh:mm:ss +zzzz", m[3])
	}
	status, _ := strconv.Atoi(m[5])
	method, target := "", m[4]
	if f := strings.Fields(m[4]); len(f) >= 2 {
		method, target = f[0], f[1]
	}
	path, _, _ := strings.Cut(target, "?")
	ev := &event.Event{
		Time:     t,
		Service:  or(cfg.Service, "http"),
		Actor:    event.Actor{ID: event.FitText(or(dash(m[2]), "anonymous"), event.MaxActorIDLen), Type: event.ActorUser},
		Source:   event.Source{IP: ip.Unmap(), UserAgent: event.FitText(unescape(dash(m[8])), event.MaxUserAgentLen)},
		Action:   methodAction(method),
		Category: event.CategoryDataAccess,
		Outcome:  event.OutcomeSuccess,
		Resource: &event.Resource{Type: "http_path", ID: event.FitText(or(path, "-"), event.MaxResourceLen)},
		Attributes: map[string]string{
			"http_status": m[5],
			"http_method": event.FitText(method, 32),
		},
	}
	if m[6] != "-" {
		ev.Attributes["bytes"] = m[6]
	}
	if r := dash(m[7]); r != "" {
		// Without the query and the fragment, as for the path: they can
		// hold personal data (a search, a token), which the log keeps
		// for good.
		r, _, _ = strings.Cut(unescape(r), "?")
		r, _, _ = strings.Cut(r, "#")
		ev.Attributes["referer"] = event.FitText(r, event.MaxAttrValueLen)
	}
	if status >= 400 {
		ev.Outcome, ev.Reason = event.OutcomeFailure, "http_"+m[5]
	}
	return ev, nil
}

// methodAction maps an HTTP method to an action verb.
func methodAction(m string) string {
	switch m {
	case "GET", "HEAD":
		return "read"
	case "POST":
		return "create"
	case "PUT", "PATCH":
		return "update"
	case "DELETE":
		return "delete"
	case "":
		return "request"
	}
	b := []byte(strings.ToLower(m))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] < 'a' || b[0] > 'z' || len(b) > 32 {
		return "request"
	}
	return string(b)
}

// Syslog (RFC 3164, journald "short") and ISO-timestamped ("short-iso",
// rsyslog RFC 3339) lines of sshd (or sshd-session, OpenSSH 9.8+).
var (
	syslogRE    = regexp.MustCompile(`^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}:\d{2}:\d{2}) (\S+) (sshd(?:-session)?)(?:\[(\d+)\])?: (.*)$`)
	isoSyslogRE = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}T\S+) (\S+) (sshd(?:-session)?)(?:\[(\d+)\])?: (.*)$`)

	// otherSyslogRE matches the syslog lines of any program (a tag of
	// letters, digits and ._/-, a pid or not), in both time formats: the
	// lines of CRON, sudo, systemd-logind and the rest that share
	// /var/log/auth.log with sshd.
	otherSyslogRE = regexp.MustCompile(`^(?:[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+) \S+ [\w./-]+(?:\[\d+\])?: `)

	sshFailedRE   = regexp.MustCompile(`^Failed (\S+) for (invalid user )?(.*) from (\S+) port (\d+)`)
	sshInvalidRE  = regexp.MustCompile(`^Invalid user (.*) from (\S+)(?: port (\d+))?$`)
	sshAcceptedRE = regexp.MustCompile(`^Accepted (\S+) for (.*) from (\S+) port (\d+)`)
	sshDiscRE     = regexp.MustCompile(`^Disconnected from (invalid user |authenticating user |user )(.*) (\S+) port (\d+)( \[preauth\])?$`)
)

func parseSSHD(line string, cfg Config) (*event.Event, error) {
	var t time.Time
	var host, pid, msg string
	if m := syslogRE.FindStringSubmatch(line); m != nil {
		loc := cfg.Location
		if loc == nil {
			loc = time.Local
		}
		now := cfg.now().In(loc)
		p, err := time.ParseInLocation("Jan 2 15:04:05 2006", fmt.Sprintf("%s %s %s %d", m[1], m[2], m[3], now.Year()), loc)
		if err != nil {
			return nil, fmt.Errorf("time %q is not a syslog time", m[1]+" "+m[2]+" "+m[3])
		}
		if p.After(now.Add(24 * time.Hour)) { // December's lines read in January
			p = p.AddDate(-1, 0, 0)
		}
		t, host, pid, msg = p, m[4], m[6], m[7]
	} else if m := isoSyslogRE.FindStringSubmatch(line); m != nil {
		p, err := parseISO(m[1])
		if err != nil {
			return nil, fmt.Errorf("time %q is not an ISO 8601 time", m[1])
		}
		t, host, pid, msg = p, m[2], m[4], m[5]
	} else if otherSyslogRE.MatchString(line) {
		return nil, ErrSkip // another program's line
	} else {
		return nil, errors.New("not an sshd syslog line (Mmm dd hh:mm:ss host sshd[pid]: message, or an ISO time in front)")
	}
	ev := &event.Event{
		Time:       t,
		Service:    or(cfg.Service, "sshd"),
		Category:   event.CategoryAuthentication,
		Attributes: map[string]string{"host": event.FitText(host, 256)},
	}
	if pid != "" {
		ev.Attributes["pid"] = pid
	}
	var user, ip, port string
	switch {
	case sshFailedRE.MatchString(msg):
		m := sshFailedRE.FindStringSubmatch(msg)
		ev.Action, ev.Outcome, ev.Reason = "login", event.OutcomeFailure, "invalid_credentials"
		if m[2] != "" {
			ev.Reason = "unknown_user"
		}
		ev.Attributes["method"] = event.FitText(m[1], 64)
		user, ip, port = m[3], m[4], m[5]
	case sshInvalidRE.MatchString(msg):
		m := sshInvalidRE.FindStringSubmatch(msg)
		ev.Action, ev.Outcome, ev.Reason = "login", event.OutcomeFailure, "unknown_user"
		user, ip, port = m[1], m[2], m[3]
	case sshAcceptedRE.MatchString(msg):
		m := sshAcceptedRE.FindStringSubmatch(msg)
		ev.Action, ev.Outcome = "login", event.OutcomeSuccess
		ev.Attributes["method"] = event.FitText(m[1], 64)
		user, ip, port = m[2], m[3], m[4]
	case sshDiscRE.MatchString(msg):
		m := sshDiscRE.FindStringSubmatch(msg)
		ev.Action, ev.Outcome = "logout", event.OutcomeSuccess
		if m[1] != "user " {
			ev.Outcome, ev.Reason = event.OutcomeFailure, "disconnected_before_authentication"
		}
		user, ip, port = m[2], m[3], m[4]
	default:
		return nil, ErrSkip
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("address %q is not an IP address", ip)
	}
	ev.Source.IP = a.Unmap().WithZone("")
	if p, err := strconv.ParseUint(port, 10, 16); err == nil && p > 0 {
		ev.Source.Port = uint16(p)
	}
	ev.Actor = event.Actor{ID: event.FitText(or(user, "unknown"), event.MaxActorIDLen), Type: event.ActorUser}
	return ev, nil
}

func parseISO(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05.999999-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// unescape undoes the \" and \\ escapes of access logs.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(s)
}
