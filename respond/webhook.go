package respond

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
)

// Standard Webhooks headers.
const (
	headerWebhookID        = "webhook-id"
	headerWebhookTimestamp = "webhook-timestamp"
	headerWebhookSignature = "webhook-signature"
)

// webhookSender posts messages as Standard Webhooks
// (https://www.standardwebhooks.com): the body is EncodePayload's JSON,
// signed with HMAC-SHA256 in the webhook-signature header, so that any
// Standard Webhooks library verifies it. It is safe for concurrent use.
type webhookSender struct {
	target httpTarget
	// keys are the signing keys (each secret after whsec_, decoded): the
	// current one, then those being rotated out.
	keys [][]byte
}

// Send posts m once. 2xx is delivered; 410 reports the endpoint gone; 429
// and 503 carry their Retry-After; anything else, or no answer, is a
// failure to retry.
func (s *webhookSender) Send(ctx context.Context, m *Message) Outcome {
	body, err := EncodePayload(m)
	if err != nil {
		return Outcome{Err: err, Permanent: true}
	}
	now := s.target.now()
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := webhookSignature(s.keys[0], m.ID, ts, body)
	for _, k := range s.keys[1:] {
		// Standard Webhooks: signatures, space-delimited, one per key,
		// so that receivers verify with whichever secret they hold.
		sig += " " + webhookSignature(k, m.ID, ts, body)
	}
	a, err := s.target.post(ctx, body, func(h http.Header) {
		h[headerWebhookID] = []string{m.ID}
		h[headerWebhookTimestamp] = []string{ts}
		h[headerWebhookSignature] = []string{sig}
	})
	if err != nil {
		return Outcome{Err: err}
	}
	return a.outcome(now)
}

// webhookSignature returns the Standard Webhooks signature of a message:
// "v1," and the base64 of HMAC-SHA256(key, id "." timestamp "." body),
// timestamp being the send time in Unix seconds, in decimal.
func webhookSignature(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
