package respond

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/accessledger/accessledger/event"
)

// slackPost is a message as the fake Slack decodes it.
type slackPost struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			Verbatim bool   `json:"verbatim"`
		} `json:"text"`
		Elements []struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			Verbatim bool   `json:"verbatim"`
		} `json:"elements"`
	} `json:"blocks"`
}

// block returns the first block of type typ, or fails.
func (p *slackPost) block(t *testing.T, typ string) string {
	t.Helper()
	for _, b := range p.Blocks {
		if b.Type != typ {
			continue
		}
		if b.Text != nil {
			return b.Text.Text
		}
		var parts []string
		for _, e := range b.Elements {
			parts = append(parts, e.Text)
		}
		return strings.Join(parts, " ")
	}
	t.Fatalf("no %s block in %+v", typ, p)
	return ""
}

// texts returns every text of the message.
func (p *slackPost) texts() []string {
	out := []string{p.Text}
	for _, b := range p.Blocks {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, e := range b.Elements {
			out = append(out, e.Text)
		}
	}
	return out
}

// checkSlackShape reports why body is not an incoming-webhook message of
// the shape the Slack sender documents and Block Kit accepts.
func checkSlackShape(r *http.Request, body []byte) error {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	if !json.Valid(body) || !utf8.Valid(body) {
		return fmt.Errorf("body is not valid JSON")
	}
	var p slackPost
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	if p.Text == "" {
		return fmt.Errorf("text is empty")
	}
	if len(p.Blocks) == 0 || len(p.Blocks) > 50 {
		return fmt.Errorf("%d blocks, want 1 to 50", len(p.Blocks))
	}
	for i, b := range p.Blocks {
		switch b.Type {
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" || b.Text.Text == "" {
				return fmt.Errorf("block %d: a header needs a plain_text text", i)
			}
			if n := utf8.RuneCountInString(b.Text.Text); n > 150 {
				return fmt.Errorf("block %d: header text of %d characters, want at most 150", i, n)
			}
		case "section":
			if b.Text == nil || (b.Text.Type != "mrkdwn" && b.Text.Type != "plain_text") || b.Text.Text == "" {
				return fmt.Errorf("block %d: a section needs a text", i)
			}
			if n := utf8.RuneCountInString(b.Text.Text); n > 3000 {
				return fmt.Errorf("block %d: section text of %d characters, want at most 3000", i, n)
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				return fmt.Errorf("block %d: %d context elements, want 1 to 10", i, len(b.Elements))
			}
			for _, e := range b.Elements {
				if e.Type != "mrkdwn" && e.Type != "plain_text" || utf8.RuneCountInString(e.Text) > 3000 {
					return fmt.Errorf("block %d: bad context element %+v", i, e)
				}
			}
		default:
			return fmt.Errorf("block %d: unexpected type %q", i, b.Type)
		}
	}
	return nil
}

// fakeSlack is an incoming webhook on loopback: it checks each message's
// shape, as Slack does, and answers what the test sets.
type fakeSlack struct {
	*httptest.Server
	posts  chan slackPost
	answer func(w http.ResponseWriter)
	// invalid is called with what is wrong with a refused message.
	invalid func(error)
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{posts: make(chan slackPost, 16)}
	f.answer = func(w http.ResponseWriter) { io.WriteString(w, "ok") }
	f.invalid = func(err error) { t.Errorf("fake Slack: %v", err) }
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/T000/B000/XXXXSECRET" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "no_service")
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := checkSlackShape(r, body); err != nil {
			f.invalid(fmt.Errorf("%w\n%s", err, body))
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "invalid_payload")
			return
		}
		var p slackPost
		json.Unmarshal(body, &p)
		f.posts <- p
		f.answer(w)
	}))
	t.Cleanup(f.Close)
	return f
}

func newTestSlackSender(t *testing.T, url string) *slackSender {
	t.Helper()
	s, err := NewSender(ResponderConfig{Name: "chat", Type: TypeSlack, URL: url + "/services/T000/B000/XXXXSECRET"}, DefaultDelivery(), nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	return s.(*slackSender)
}

// slackSend sends m to the fake and returns what it received.
func slackSend(t *testing.T, f *fakeSlack, m *Message) slackPost {
	t.Helper()
	s := newTestSlackSender(t, f.URL)
	if o := s.Send(context.Background(), m); o.Err != nil || o.Status != 200 {
		t.Fatalf("Send = %+v, want delivered with 200", o)
	}
	return <-f.posts
}

func TestSlackDeliversAlert(t *testing.T) {
	f := newFakeSlack(t)
	m := senderTestMessage(t, TypeAlertRaised, senderTestAlert(t))
	p := slackSend(t, f, m)
	header, section, ctx := p.block(t, "header"), p.block(t, "section"), p.block(t, "context")
	for _, want := range []string{"High alert", "Brute force against one account"} {
		if !strings.Contains(header, want) {
			t.Errorf("header = %q, want it to contain %q", header, want)
		}
	}
	for _, want := range []string{"12 failed logins for alice in 5 minutes", "*Level:* high", "brute-force-single-account",
		"*Group:* actor.id = alice, source.ip = 203.0.113.7", "*Evidence:* 3 events"} {
		if !strings.Contains(section, want) {
			t.Errorf("section = %q, want it to contain %q", section, want)
		}
	}
	if strings.Contains(section, "*Count:*") {
		t.Errorf("section = %q mentions a count for a single alert", section)
	}
	if !strings.Contains(ctx, "Alert 42") || !strings.Contains(ctx, "2026-11-27T06:00:01Z") {
		t.Errorf("context = %q, want the alert id and time", ctx)
	}
	if !strings.Contains(p.Text, "Brute force against one account") || strings.Contains(p.Text, "\n") {
		t.Errorf("text = %q, want a one-line summary", p.Text)
	}

	m.Count = 5
	p = slackSend(t, f, m)
	if section := p.block(t, "section"); !strings.Contains(section, "*Count:* 5 alerts") {
		t.Errorf("section of a throttled message = %q, want *Count:* 5 alerts", section)
	}
}

func TestSlackEscapesAlertText(t *testing.T) {
	f := newFakeSlack(t)
	a := senderTestAlert(t)
	a.Rule.Title = "Login <script> & co"
	a.Summary = "<!channel> ping <https://evil.example|click here> & more"
	a.Group = []event.GroupValue{{Field: "actor.id", Value: "<@U0123>"}}
	m := senderTestMessage(t, TypeAlertRaised, a)
	p := slackSend(t, f, m)
	section := p.block(t, "section")
	for _, want := range []string{"&lt;!channel&gt; ping &lt;https://evil.example|click here&gt; &amp; more", "actor.id = &lt;@U0123&gt;",
		"Login &lt;script&gt; &amp; co"} {
		if !strings.Contains(section, want) {
			t.Errorf("section = %q, want it to contain %q", section, want)
		}
	}
	if h := p.block(t, "header"); !strings.Contains(h, "Login &lt;script&gt; &amp; co") {
		t.Errorf("header = %q, want the title escaped", h)
	}
	// Escaping leaves what Slack finds in plain text: a URL or a channel
	// name becomes a link, @here a mention, unless the text is verbatim.
	for _, b := range p.Blocks {
		if b.Text != nil && b.Text.Type == "mrkdwn" && !b.Text.Verbatim {
			t.Errorf("%s block's mrkdwn text is not verbatim: Slack links URLs and parses mentions in it", b.Type)
		}
		for _, e := range b.Elements {
			if e.Type == "mrkdwn" && !e.Verbatim {
				t.Errorf("%s block's mrkdwn element is not verbatim", b.Type)
			}
		}
	}
	for _, s := range p.texts() {
		if strings.ContainsAny(s, "<>") {
			t.Errorf("text %q holds an unescaped < or >", s)
		}
		rest := strings.NewReplacer("&amp;", "", "&lt;", "", "&gt;", "").Replace(s)
		if strings.Contains(rest, "&") {
			t.Errorf("text %q holds an unescaped &", s)
		}
	}

	m = senderTestMessage(t, TypeAlertAcknowledged, a)
	m.By, m.Note = "<!here>", "on it\n<b>bold</b> & done"
	p = slackSend(t, f, m)
	section = p.block(t, "section")
	for _, want := range []string{"*&lt;!here&gt;* acknowledged alert 42", ">on it\n>&lt;b&gt;bold&lt;/b&gt; &amp; done"} {
		if !strings.Contains(section, want) {
			t.Errorf("section = %q, want it to contain %q", section, want)
		}
	}
}

func TestSlackLimits(t *testing.T) {
	f := newFakeSlack(t)
	a := senderTestAlert(t)
	a.Rule.Title = strings.Repeat("é<", 300) // 600 runes, 900 bytes, 1500 characters escaped
	a.Summary = strings.Repeat("&", 1000)
	a.Group = nil
	for i := range 16 {
		a.Group = append(a.Group, event.GroupValue{Field: fmt.Sprintf("f%d", i), Value: strings.Repeat("日本<", 300)})
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	p := slackSend(t, f, senderTestMessage(t, TypeAlertRaised, a))
	for _, s := range p.texts() {
		if !utf8.ValidString(s) {
			t.Errorf("text %q is not valid UTF-8", s)
		}
		rest := strings.NewReplacer("&amp;", "", "&lt;", "", "&gt;", "").Replace(s)
		if strings.Contains(rest, "&") {
			t.Errorf("text %q holds a cut entity", s[max(len(s)-40, 0):])
		}
	}
	header, section := p.block(t, "header"), p.block(t, "section")
	if n := utf8.RuneCountInString(header); n > 150 || !strings.HasSuffix(header, "…") {
		t.Errorf("header of %d characters ending %q, want at most 150 ending with …", n, header[len(header)-10:])
	}
	if n := utf8.RuneCountInString(section); n > 3000 || n < 2900 || !strings.HasSuffix(section, "…") {
		t.Errorf("section of %d characters, want close to 3000 ending with …", n)
	}
}

func TestSlackClipText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefghi…"},
		{"abcdef&amp;xyz", 10, "abcdef…"},    // never inside an entity
		{"abcde&amp;xyz", 11, "abcde&amp;…"}, // a whole entity stays
		{"ééééééééééé", 10, "ééééééééé…"},    // runes, not bytes
		{"😀😀😀😀😀😀", 10, "😀😀😀😀…"},              // UTF-16: two units each
	}
	for _, tt := range tests {
		if got := slackClip(tt.in, tt.max); got != tt.want {
			t.Errorf("slackClip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestSlackLifecycleAndDigest(t *testing.T) {
	f := newFakeSlack(t)
	a := senderTestAlert(t)
	tests := []struct {
		typ            string
		header, inText []string
	}{
		{TypeAlertAcknowledged, []string{"Acknowledged: Brute force against one account"},
			[]string{"*alice-oncall* acknowledged alert 42: 12 failed logins", ">looking into it", "*Level:* high"}},
		{TypeAlertResolved, []string{"Resolved: Brute force against one account"},
			[]string{"*alice-oncall* resolved alert 42", ">password reset, IP banned"}},
		{TypeDigest, []string{"Digest: 2026-11-26 to 2026-11-27 UTC"},
			[]string{"*Events:* 1000   *Alerts:* 7", "*Open:* 3   *Acknowledged:* 1", "*Delivery failures:* 2   *Dead-lettered:* 0",
				"*By level:* high 5, medium 2", "*Top rules:* brute-force-single-account 5, impossible-travel 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			p := slackSend(t, f, senderTestMessage(t, tt.typ, a))
			header, section := p.block(t, "header"), p.block(t, "section")
			for _, want := range tt.header {
				if !strings.Contains(header, want) {
					t.Errorf("header = %q, want it to contain %q", header, want)
				}
			}
			for _, want := range tt.inText {
				if !strings.Contains(section, want) {
					t.Errorf("section = %q, want it to contain %q", section, want)
				}
			}
		})
	}
}

func TestSlackOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter)
		status     int
		ok         bool
		gone       bool
		permanent  bool
		retryAfter time.Duration
	}{
		{"OK", func(w http.ResponseWriter) { io.WriteString(w, "ok") }, 200, true, false, false, 0},
		{"RateLimited", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(429)
			io.WriteString(w, "rate_limited")
		}, 429, false, false, false, 30 * time.Second},
		{"InvalidPayload", func(w http.ResponseWriter) { w.WriteHeader(400); io.WriteString(w, "invalid_payload") }, 400, false, false, true, 0},
		{"ActionProhibited", func(w http.ResponseWriter) { w.WriteHeader(403); io.WriteString(w, "action_prohibited") }, 403, false, false, true, 0},
		{"ChannelArchived", func(w http.ResponseWriter) { w.WriteHeader(410); io.WriteString(w, "channel_is_archived") }, 410, false, true, false, 0},
		{"NoService", func(w http.ResponseWriter) { w.WriteHeader(404); io.WriteString(w, "no_service") }, 404, false, true, false, 0},
		{"ServerError", func(w http.ResponseWriter) { w.WriteHeader(500); io.WriteString(w, "rollup_error") }, 500, false, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.answer = tt.answer
			s := newTestSlackSender(t, f.URL)
			o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
			if o.Status != tt.status || (o.Err == nil) != tt.ok || o.Gone != tt.gone || o.Permanent != tt.permanent || o.RetryAfter != tt.retryAfter {
				t.Fatalf("Send = %+v, want status %d, delivered %v, gone %v, permanent %v, retry after %v",
					o, tt.status, tt.ok, tt.gone, tt.permanent, tt.retryAfter)
			}
			if o.Err != nil && strings.Contains(o.Err.Error(), "XXXXSECRET") {
				t.Errorf("Send error %q quotes the webhook URL, a secret", o.Err)
			}
		})
	}

	// The fake's own check can fail: a message without text is refused.
	f := newFakeSlack(t)
	var refused error
	f.invalid = func(err error) { refused = err }
	resp, err := http.Post(f.URL+"/services/T000/B000/XXXXSECRET", "application/json", strings.NewReader(`{"blocks":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || refused == nil {
		t.Errorf("fake Slack took a message without text: %d, %v", resp.StatusCode, refused)
	}
}

func TestSlackErrorsHideTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newTestSlackSender(t, "http://"+addr)
	o := s.Send(context.Background(), senderTestMessage(t, TypeAlertRaised, senderTestAlert(t)))
	if o.Err == nil || o.Status != 0 || strings.Contains(o.Err.Error(), "XXXXSECRET") {
		t.Errorf("Send to a closed port = %+v, want an error with status 0 that does not quote the URL", o)
	}
}
