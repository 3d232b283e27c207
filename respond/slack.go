package respond

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/accessledger/accessledger/event"
)

// Block Kit limits, in characters.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackTextMax    = 3000 // the fallback text and context elements
	slackTopRules   = 10   // rules listed in a digest
)

// slackSender posts messages to a Slack incoming webhook as Block Kit
// messages: a header, a section with the details and a context line,
// with a one-line fallback text for notifications. Every piece of
// alert-derived text is escaped (&, <, >), so that an alert cannot
// mention @channel or forge a link. It is safe for concurrent use.
type slackSender struct {
	target httpTarget
}

// slackMessage is the JSON an incoming webhook takes.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitzero"`
	Elements []slackText `json:"elements,omitzero"`
}

type slackText struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitzero"`
	// Verbatim (mrkdwn only) stops Slack from turning URLs and channel
	// names in the text into links and from parsing mentions such as
	// @here: alert text holds what an attacker typed (an account name,
	// a user agent), which would otherwise put a clickable link or a
	// mention into the channel.
	Verbatim bool `json:"verbatim,omitzero"`
}

// Send posts m once. Slack answers 200 "ok"; 429 carries Retry-After;
// 404 and 410 (no_service, channel_is_archived) report the webhook gone;
// 400 (invalid_payload) and 403 (action_prohibited, invalid_token) are
// permanent; anything else, or no answer, is a failure to retry.
func (s *slackSender) Send(ctx context.Context, m *Message) Outcome {
	msg, err := slackMessageFor(m)
	if err != nil {
		return Outcome{Err: err, Permanent: true}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return Outcome{Err: fmt.Errorf("message %s: encoding the Slack message: %w", m.ID, err), Permanent: true}
	}
	now := s.target.now()
	a, err := s.target.post(ctx, body, nil)
	if err != nil {
		return Outcome{Err: err}
	}
	o := a.outcome(now)
	switch a.status {
	case http.StatusNotFound:
		o.Gone = true
	case http.StatusBadRequest, http.StatusForbidden:
		o.Permanent = true
	}
	return o
}

// slackMessageFor builds the Block Kit message of m.
func slackMessageFor(m *Message) (*slackMessage, error) {
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	var header, text, section, footer string
	if m.Type == TypeDigest {
		header, text, section = slackDigest(m.Digest)
		footer = "accessledger digest " + slackEscape(m.ID)
	} else {
		header, text, section = slackAlert(m)
		footer = fmt.Sprintf("Alert %s · %s · accessledger", AlertID(m.AlertIndex), m.Time.UTC().Format(time.RFC3339))
	}
	return &slackMessage{
		Text: slackClip(text, slackTextMax),
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: slackClip(header, slackHeaderMax), Emoji: true}},
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: slackClip(section, slackSectionMax), Verbatim: true}},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: slackClip(footer, slackTextMax), Verbatim: true}}},
		},
	}, nil
}

// slackAlert returns the header, the fallback text and the section of an
// alert message, escaped.
func slackAlert(m *Message) (header, text, section string) {
	a := m.Alert
	title := slackEscape(oneLineText(a.Rule.Title))
	summary := slackEscape(oneLineText(cmp.Or(a.Summary, a.Rule.Title)))
	level := slackEscape(a.Rule.Level)
	var b strings.Builder
	switch m.Type {
	case TypeAlertAcknowledged, TypeAlertResolved:
		verb := "acknowledged"
		if m.Type == TypeAlertResolved {
			verb = "resolved"
		}
		header = fmt.Sprintf("%s: %s", upperFirst(verb), title)
		by := slackEscape(oneLineText(cmp.Or(m.By, "someone")))
		text = fmt.Sprintf("%s %s alert %s: %s", by, verb, AlertID(m.AlertIndex), title)
		fmt.Fprintf(&b, "*%s* %s alert %s: %s\n", by, verb, AlertID(m.AlertIndex), summary)
		if m.Note != "" {
			for _, line := range strings.Split(strings.TrimSpace(m.Note), "\n") {
				fmt.Fprintf(&b, ">%s\n", slackEscape(line))
			}
		}
		fmt.Fprintf(&b, "*Level:* %s   *Rule:* %s (%s)", level, title, slackEscape(a.Rule.ID))
	default:
		header = fmt.Sprintf("%s %s alert: %s", slackLevelEmoji(a.Rule.Level), upperFirst(level), title)
		text = fmt.Sprintf("%s alert: %s: %s", upperFirst(level), title, summary)
		fmt.Fprintf(&b, "%s\n*Level:* %s   *Rule:* %s (%s)", summary, level, title, slackEscape(a.Rule.ID))
		if len(a.Group) > 0 {
			b.WriteString("\n*Group:* ")
			for i, g := range a.Group {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s = %s", slackEscape(oneLineText(g.Field)), slackEscape(oneLineText(g.Value)))
			}
		}
		fmt.Fprintf(&b, "\n*Evidence:* %d %s", a.EvidenceCount, pluralWord(a.EvidenceCount, "event", "events"))
		if m.Count > 1 {
			fmt.Fprintf(&b, "\n*Count:* %d alerts of this rule and group in the period", m.Count)
		}
	}
	return header, text, b.String()
}

// slackDigest returns the header, the fallback text and the section of a
// digest.
func slackDigest(d *event.Digest) (header, text, section string) {
	const day = "2006-01-02"
	const minute = "2006-01-02 15:04"
	layout := minute
	start, end := d.Start.UTC(), d.End.UTC()
	if start.Equal(start.Truncate(24*time.Hour)) && end.Equal(end.Truncate(24*time.Hour)) {
		layout = day
	}
	header = fmt.Sprintf("Digest: %s to %s UTC", start.Format(layout), end.Format(layout))
	text = fmt.Sprintf("accessledger digest: %d events, %d alerts, %d open, %d dead-lettered", d.Events, d.Alerts, d.OpenAlerts, d.DeadLettered)
	var b strings.Builder
	fmt.Fprintf(&b, "*Events:* %d   *Alerts:* %d\n", d.Events, d.Alerts)
	fmt.Fprintf(&b, "*Open:* %d   *Acknowledged:* %d\n", d.OpenAlerts, d.Acknowledged)
	fmt.Fprintf(&b, "*Delivery failures:* %d   *Dead-lettered:* %d", d.DeliveryFailures, d.DeadLettered)
	if len(d.AlertsByLevel) > 0 {
		b.WriteString("\n*By level:* ")
		first := true
		for _, l := range []string{event.LevelCritical, event.LevelHigh, event.LevelMedium, event.LevelLow, event.LevelInformational} {
			if n := d.AlertsByLevel[l]; n > 0 {
				if !first {
					b.WriteString(", ")
				}
				first = false
				fmt.Fprintf(&b, "%s %d", l, n)
			}
		}
	}
	if len(d.AlertsByRule) > 0 {
		rules := slices.SortedFunc(maps.Keys(d.AlertsByRule), func(x, y string) int {
			return cmp.Or(cmp.Compare(d.AlertsByRule[y], d.AlertsByRule[x]), strings.Compare(x, y))
		})
		b.WriteString("\n*Top rules:* ")
		for i, r := range rules[:min(len(rules), slackTopRules)] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", slackEscape(oneLineText(r)), d.AlertsByRule[r])
		}
		if len(rules) > slackTopRules {
			fmt.Fprintf(&b, " and %d more", len(rules)-slackTopRules)
		}
	}
	return header, text, b.String()
}

// slackLevelEmoji returns the emoji code of an alert level.
func slackLevelEmoji(level string) string {
	switch level {
	case event.LevelCritical:
		return ":red_circle:"
	case event.LevelHigh:
		return ":large_orange_circle:"
	case event.LevelMedium:
		return ":large_yellow_circle:"
	case event.LevelLow:
		return ":large_blue_circle:"
	default:
		return ":white_circle:"
	}
}

// slackEscaper replaces Slack's control characters with their entities.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackEscape escapes &, < and > in s, as Slack requires of text that is
// not markup.
func slackEscape(s string) string { return slackEscaper.Replace(s) }

// slackClip cuts escaped text to at most max characters (counted in
// UTF-16 code units, which is never fewer than runes), at a rune
// boundary and never inside an entity, ending it with "…" when cut.
func slackClip(s string, max int) string {
	if lenUTF16(s) <= max {
		return s
	}
	s = clipUTF16(s, max-1)
	if i := strings.LastIndexByte(s, '&'); i >= 0 && !strings.Contains(s[i:], ";") {
		s = s[:i]
	}
	return s + "…"
}

// clipUTF16 returns the longest prefix of s, cut at a rune boundary, that
// is at most max UTF-16 code units long.
func clipUTF16(s string, max int) string {
	n := 0
	for i, r := range s {
		w := utf16.RuneLen(r)
		if w < 0 {
			w = 1 // an invalid byte, sent as U+FFFD
		}
		if n+w > max {
			return s[:i]
		}
		n += w
	}
	return s
}

// lenUTF16 returns the length of s in UTF-16 code units.
func lenUTF16(s string) int {
	n := 0
	for _, r := range s {
		if w := utf16.RuneLen(r); w > 0 {
			n += w
		} else {
			n++
		}
	}
	return n
}

// oneLineText replaces the line breaks and tabs in s by spaces.
func oneLineText(s string) string {
	if !strings.ContainsAny(s, "\r\n\t") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}

// upperFirst returns s with its first letter in upper case.
func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || r < 'a' || r > 'z' {
		return s
	}
	return string(r-'a'+'A') + s[n:]
}

// pluralWord returns one if n is 1, else many.
func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
