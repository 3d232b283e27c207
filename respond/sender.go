package respond

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/accessledger/accessledger/event"
)

// DefaultPagerDutyURL is the PagerDuty Events API v2 endpoint, used when a
// pagerduty responder sets no url.
const DefaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"

// UserAgent is the User-Agent of every request a sender makes.
const UserAgent = "accessledger/1 (responder)"

// MaxResponseBody is the most a sender reads of an HTTP answer; the rest
// is discarded.
const MaxResponseBody = 64 << 10

// Limits on a webhook signing secret (Standard Webhooks: whsec_ followed
// by the base64 of 24 to 64 random bytes).
const (
	webhookSecretPrefix = "whsec_"
	minWebhookKey       = 24
	maxWebhookKey       = 64
	pagerDutyKeyLen     = 32
)

// MinTimeout is the shortest timeout a responder, or the delivery
// default, may set: shorter, every request or command fails.
const MinTimeout = 100 * time.Millisecond

// ConfigError reports a responder configuration that cannot work. Its
// message names the responder and the field; it never quotes a secret.
type ConfigError struct {
	// Responder is the responder's name, and Field the configuration
	// field at fault (url, secret, routing_key, command, type, …).
	Responder string
	Field     string
	// Reason says what is wrong, for instance "type webhook needs a
	// url".
	Reason string
	// Err is the underlying error (reading a secret file, looking up a
	// program), if any.
	Err error
}

// Error returns `responder "<name>": <reason>`.
func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("responder %q: %s", e.Responder, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// resolvedResponder is what checking a responder's configuration yields:
// the values a sender is built from.
type resolvedResponder struct {
	url     string   // webhook, slack, pagerduty
	keys    [][]byte // webhook: the decoded signing keys, the current one first
	program string   // exec: the program's path, from exec.LookPath
}

// maxWebhookSecrets bounds the secrets a webhook signs with: the current
// one and those being rotated out.
const maxWebhookSecrets = 4

// ValidateResponder reports the first reason cfg cannot work, as a
// *ConfigError naming the responder and the field; nil if it can. It
// reads a secret_file and looks the exec program up in PATH, so that a
// configuration check catches what NewSender would refuse.
func ValidateResponder(cfg ResponderConfig) error {
	_, err := resolveResponder(cfg)
	return err
}

// resolveResponder checks cfg and resolves its secret, endpoint and
// program.
func resolveResponder(cfg ResponderConfig) (*resolvedResponder, error) {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Responder: cfg.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if cfg.Name == "" {
		return nil, bad("name", "a name is required")
	}
	// The name goes into the log's response leaves (their "by", at most
	// 128 bytes), into storage keys and into URL paths
	// (/v1/responders/<name>/...): a longer one failed every delivery's
	// bookkeeping, which then resent it every second.
	if !event.ValidName(cfg.Name) {
		return nil, bad("name", "want 1 to 64 characters [A-Za-z0-9._@-], starting with a letter or digit")
	}
	if cfg.Timeout < 0 {
		return nil, bad("timeout", "timeout must not be negative")
	}
	// 1ns was accepted, and failed every delivery.
	if cfg.Timeout > 0 && cfg.Timeout < MinTimeout {
		return nil, bad("timeout", "timeout %s is too short for a request or a command: at least %s (0 or absent: the delivery default)", cfg.Timeout, MinTimeout)
	}
	if cfg.Throttle < 0 {
		return nil, bad("throttle", "throttle must not be negative (0 or absent: no throttling)")
	}
	// A level no alert has would select nothing, silently.
	for _, lv := range cfg.Filter.Levels {
		if !slices.Contains(event.Levels, lv) {
			return nil, bad("filter.levels", "unknown level %q (levels: %s)", lv, strings.Join(event.Levels, ", "))
		}
	}
	switch cfg.Type {
	case TypeWebhook, TypeSlack, TypePagerDuty, TypeExec:
	default:
		return nil, bad("type", "unknown type %q (valid types: %s, %s, %s, %s)", cfg.Type, TypeWebhook, TypeSlack, TypePagerDuty, TypeExec)
	}
	// A field the type does not use is refused: it was set by mistake,
	// and ignoring it would hide the mistake.
	if cfg.Type != TypeWebhook && (cfg.Secret != "" || cfg.SecretFile != "" || len(cfg.PreviousSecrets) > 0) {
		return nil, bad("secret", "type %s takes no secret, secret_file or previous_secrets", cfg.Type)
	}
	if cfg.Type != TypePagerDuty && cfg.RoutingKey != "" {
		return nil, bad("routing_key", "type %s takes no routing_key", cfg.Type)
	}
	if cfg.Type != TypeExec && len(cfg.Command) > 0 {
		return nil, bad("command", "type %s takes no command", cfg.Type)
	}
	if cfg.Type == TypePagerDuty && cfg.Digest {
		return nil, bad("digest", "type pagerduty takes no digest: a PagerDuty incident is about one alert")
	}
	r := &resolvedResponder{}
	switch cfg.Type {
	case TypeWebhook, TypeSlack:
		if cfg.URL == "" {
			return nil, bad("url", "type %s needs a url", cfg.Type)
		}
		if err := checkSenderURL(cfg.URL); err != nil {
			return nil, bad("url", "%s", err)
		}
		r.url = cfg.URL
		if cfg.Type == TypeSlack {
			break
		}
		secrets := append([]string{cfg.Secret}, cfg.PreviousSecrets...)
		field := "secret"
		switch {
		case cfg.Secret != "" && cfg.SecretFile != "":
			return nil, bad("secret", "set secret or secret_file, not both")
		case cfg.SecretFile != "" && len(cfg.PreviousSecrets) > 0:
			return nil, bad("previous_secrets", "with secret_file, put previous secrets on the file's lines after the current one")
		case cfg.SecretFile != "":
			b, err := os.ReadFile(cfg.SecretFile)
			if err != nil {
				return nil, &ConfigError{Responder: cfg.Name, Field: "secret_file", Reason: "reading secret_file", Err: err}
			}
			secrets = strings.Fields(string(b))
			if len(secrets) == 0 {
				secrets = []string{""}
			}
			field = "secret_file"
		case cfg.Secret == "":
			return nil, bad("secret", "type webhook needs a secret or secret_file (whsec_ and the base64 of %d to %d random bytes)", minWebhookKey, maxWebhookKey)
		}
		if len(secrets) > maxWebhookSecrets {
			return nil, bad(field, "%d secrets: at most %d (the current one and those being rotated out)", len(secrets), maxWebhookSecrets)
		}
		for i, secret := range secrets {
			key, err := decodeWebhookSecret(secret)
			if err != nil {
				switch {
				case i == 0:
				case field == "secret_file":
					err = fmt.Errorf("previous secret %d (line %d): %w", i, i+1, err)
				default:
					field, err = "previous_secrets", fmt.Errorf("previous_secrets[%d]: %w", i-1, err)
				}
				return nil, bad(field, "%s", err)
			}
			r.keys = append(r.keys, key)
		}
	case TypePagerDuty:
		if cfg.RoutingKey == "" {
			return nil, bad("routing_key", "type pagerduty needs a routing_key")
		}
		if n := len(cfg.RoutingKey); n != pagerDutyKeyLen {
			return nil, bad("routing_key", "a pagerduty routing_key is %d characters, not %d", pagerDutyKeyLen, n)
		}
		r.url = DefaultPagerDutyURL
		if cfg.URL != "" {
			if err := checkSenderURL(cfg.URL); err != nil {
				return nil, bad("url", "%s", err)
			}
			r.url = cfg.URL
		}
	case TypeExec:
		if len(cfg.Command) == 0 || cfg.Command[0] == "" {
			return nil, bad("command", "type exec needs a command (the program and its arguments)")
		}
		if cfg.URL != "" {
			return nil, bad("url", "type exec takes no url")
		}
		path, err := exec.LookPath(cfg.Command[0])
		if err != nil {
			return nil, &ConfigError{Responder: cfg.Name, Field: "command", Reason: "looking up the command's program", Err: err}
		}
		r.program = path
	}
	return r, nil
}

// checkSenderURL reports why u is not an absolute http or https URL. Its
// errors quote no part of the URL but the scheme: a Slack webhook URL is
// itself a secret.
func checkSenderURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("url does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("url has no host")
	}
	return nil
}

// decodeWebhookSecret returns the signing key of a Standard Webhooks
// secret, whsec_<base64>. Its errors never quote the secret.
func decodeWebhookSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return nil, fmt.Errorf("secret must start with %q", webhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("secret after %q is not standard base64", webhookSecretPrefix)
	}
	if len(key) < minWebhookKey || len(key) > maxWebhookKey {
		return nil, fmt.Errorf("secret must hold %d to %d bytes, not %d", minWebhookKey, maxWebhookKey, len(key))
	}
	return key, nil
}

// NewSender checks cfg (see ValidateResponder; its errors are
// *ConfigError) and returns the sender of its type. Each attempt is bounded by cfg.Timeout, or delivery.Timeout
// if that is zero. HTTP senders use client; a nil client means one of
// their own that follows no redirects (a 3xx answer is a failed attempt).
// Whatever the client, at most MaxResponseBody bytes of an answer are
// read. The senders are safe for concurrent use.
func NewSender(cfg ResponderConfig, delivery DeliveryConfig, client *http.Client) (Sender, error) {
	r, err := resolveResponder(cfg)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = delivery.Timeout
	}
	if timeout <= 0 {
		timeout = DefaultDelivery().Timeout
	}
	if client == nil {
		client = newSenderClient()
	}
	target := httpTarget{client: client, url: r.url, timeout: timeout, now: time.Now}
	switch cfg.Type {
	case TypeWebhook:
		return &webhookSender{target: target, keys: r.keys}, nil
	case TypeSlack:
		return &slackSender{target: target}, nil
	case TypePagerDuty:
		return &pagerDutySender{target: target, routingKey: cfg.RoutingKey}, nil
	default: // TypeExec; resolveResponder refused the others.
		return &execSender{program: r.program, args: cfg.Command[1:], timeout: timeout}, nil
	}
}

// newSenderClient returns the HTTP client senders use when given none: it
// follows no redirect and keeps a few idle connections per host for the
// outbox's concurrent deliveries.
func newSenderClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// httpTarget is an HTTP endpoint and how to reach it; the HTTP senders
// share it.
type httpTarget struct {
	client  *http.Client
	url     string
	timeout time.Duration
	now     func() time.Time
}

// httpAnswer is what an endpoint answered: the status, the headers and
// at most MaxResponseBody bytes of the body.
type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

// post sends body as JSON to the target within the attempt's timeout,
// with the headers set adds, and reads the answer. Its error is a
// transport failure (no answer), worded without the URL.
func (t *httpTarget) post(ctx context.Context, body []byte, set func(http.Header)) (*httpAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("building the request: the url does not parse")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	if set != nil {
		set(req.Header)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, t.transportError(ctx, err)
	}
	defer resp.Body.Close()
	// The status is the answer; a body cut short by an error is only
	// less detail in an error message.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	return &httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// transportError words a failed request without its URL (a Slack webhook
// URL is a secret): the host and what went wrong.
func (t *httpTarget) transportError(ctx context.Context, err error) error {
	host := "the endpoint"
	if u, perr := url.Parse(t.url); perr == nil {
		host = u.Host
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("posting to %s: timed out after %v", host, t.timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("posting to %s: %w", host, err)
}

// outcome maps an answer to the outcome of the attempt in the way every
// HTTP sender shares: 2xx delivered; 410 gone; 429 and 503 retried after
// their Retry-After, if any; anything else a failure worth retrying.
// Senders adjust it for their service's conventions.
func (a *httpAnswer) outcome(now time.Time) Outcome {
	o := Outcome{Status: a.status}
	switch {
	case a.status >= 200 && a.status < 300:
		return o
	case a.status == http.StatusGone:
		o.Gone = true
	case a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable:
		o.RetryAfter = retryAfterDelay(a.header.Get("Retry-After"), now)
	}
	o.Err = a.statusError()
	return o
}

// statusError words a non-2xx answer: the status and the start of the
// body.
func (a *httpAnswer) statusError() error {
	msg := fmt.Sprintf("answered %d %s", a.status, http.StatusText(a.status))
	if s := answerSnippet(a.body); s != "" {
		msg += ": " + s
	}
	return errors.New(msg)
}

// answerSnippet returns the start of an answer's body, fit for an error
// message: valid UTF-8, one line, at most 256 bytes.
func answerSnippet(body []byte) string {
	const limit = 256
	s := strings.ToValidUTF8(string(body[:min(len(body), limit+4)]), "?")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > limit {
		n := limit
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}

// retryAfterDelay parses a Retry-After header value, delay-seconds or an
// HTTP date, into a delay from now; 0 if the header is absent, malformed
// or in the past.
func retryAfterDelay(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// checkMessage reports why m cannot be sent (a bug upstream: the attempt
// is permanent).
func checkMessage(m *Message) error {
	switch {
	case m.ID == "":
		return errors.New("message has no id")
	case m.Type == TypeDigest:
		if m.Digest == nil {
			return fmt.Errorf("message %s: a digest without its digest", m.ID)
		}
	case m.Type == TypeAlertRaised || m.Type == TypeAlertAcknowledged || m.Type == TypeAlertResolved:
		if m.Alert == nil {
			return fmt.Errorf("message %s: %s without its alert", m.ID, m.Type)
		}
	default:
		return fmt.Errorf("message %s: unknown type %q", m.ID, m.Type)
	}
	return nil
}

// payload is the Standard Webhooks envelope; see EncodePayload.
type payload struct {
	Type      string      `json:"type"`
	Timestamp string      `json:"timestamp"`
	Data      payloadData `json:"data"`
}

type payloadData struct {
	AlertID    string         `json:"alert_id,omitzero"`
	AlertIndex *uint64        `json:"alert_index,omitzero"`
	Count      int            `json:"count,omitzero"`
	Alert      jsontext.Value `json:"alert,omitzero"`
	By         string         `json:"by,omitzero"`
	Note       string         `json:"note,omitzero"`
	Digest     *event.Digest  `json:"digest,omitzero"`
}

// EncodePayload returns the JSON a webhook posts (its signed body) and
// an exec command reads on stdin. It is the envelope Standard Webhooks
// recommends, one object on one line:
//
//	{
//	  "type": "alert.raised",            // alert.acknowledged, alert.resolved, digest
//	  "timestamp": "2026-11-27T06:00:00.000000000Z", // the message's time, RFC 3339, UTC
//	  "data": {
//	    "alert_id": "42",                // the alert's id: its log index in decimal
//	    "alert_index": 42,
//	    "count": 1,                      // alerts this notification stands for (>1 when throttled)
//	    "alert": {...},                  // the alert as recorded in the log (canonical JSON)
//	    "by": "alice",                   // acknowledged, resolved: who
//	    "note": "looking into it"        // acknowledged, resolved: why, if given
//	  }
//	}
//
// A digest carries instead "data": {"digest": {...}}, the digest with
// the fields of event.Digest. Fields without a value are left out. The
// message's id is not in the body: webhooks carry it in the webhook-id
// header, commands in ACCESSLEDGER_MESSAGE_ID; it is the same on every
// redelivery, for receivers to deduplicate, and unique across logs
// (Message.ID).
func EncodePayload(m *Message) ([]byte, error) {
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	p := payload{Type: m.Type, Timestamp: m.Time.UTC().Format(event.TimeFormat)}
	if m.Type == TypeDigest {
		d := *m.Digest
		d.Start, d.End = d.Start.UTC(), d.End.UTC()
		p.Data.Digest = &d
	} else {
		idx := m.AlertIndex
		p.Data = payloadData{
			AlertID:    AlertID(m.AlertIndex),
			AlertIndex: &idx,
			Count:      max(m.Count, 1),
			Alert:      m.Alert.Canonical(),
			By:         m.By,
			Note:       m.Note,
		}
	}
	b, err := json.Marshal(&p, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("message %s: encoding the payload: %w", m.ID, err)
	}
	return b, nil
}
