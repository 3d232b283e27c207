package respond

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/accessledger/accessledger/event"
)

// Message types: what a notification is about. They are the "type" of
// the Standard Webhooks payload.
const (
	TypeAlertRaised       = "alert.raised"
	TypeAlertAcknowledged = "alert.acknowledged"
	TypeAlertResolved     = "alert.resolved"
	TypeDigest            = "digest"
)

// Message is one notification to one responder. It is what the outbox
// stores and a Sender sends.
type Message struct {
	// ID is stable across redeliveries, so that receivers can
	// deduplicate, and unique across logs: the log's tag (see
	// Service.loadLogTag), an underscore, then the alert id (its log
	// index, in decimal) for alert.raised, "<alert id>_<response leaf
	// index>" for acknowledgements and resolutions, "digest_<leaf index>"
	// for a digest. Messages queued by earlier versions (without a tag,
	// or with a dot) keep their ids: the outbox stores them.
	ID   string `json:"id"`
	Type string `json:"type"`
	// Time is when the thing notified happened (the alert leaf's
	// receive time, the acknowledgement's time, the digest's end).
	Time time.Time `json:"time"`
	// AlertIndex and Alert are the alert (all types but digest).
	AlertIndex uint64       `json:"alert_index"`
	Alert      *event.Alert `json:"alert,omitempty"`
	// Count is how many alerts this notification stands for: more than
	// one when throttling grouped alerts of one rule and group into one
	// notification for the period.
	Count int `json:"count"`
	// By and Note are who acknowledged or resolved the alert, and why.
	By   string `json:"by,omitempty"`
	Note string `json:"note,omitempty"`
	// Digest is the digest (TypeDigest).
	Digest *event.Digest `json:"digest,omitempty"`
}

// AlertID returns the id of the alert at a log index: the index in
// decimal. It is the id of GET /v1/alerts/<id>, of SSE events and of
// the Standard Webhooks webhook-id.
func AlertID(index uint64) string { return strconv.FormatUint(index, 10) }

// logTagLen is the number of bytes of the first leaf's hash in a log's
// tag: 64 bits, so that a receiver taking a few logs' messages, or a log
// recreated after a reset, never sees two logs share one.
const logTagLen = 8

// loadLogTag sets the tag that makes this log's message ids its own: the
// first 16 hex digits of the leaf hash of the log's first entry (which
// holds its receive time to the nanosecond). Alert indexes alone repeat
// across logs: a receiver deduplicating on webhook-id, as Standard
// Webhooks advises, would drop a second log's alert 42, or a recreated
// log's. Anyone can check the tag with the log's first entry, and it
// stays the same if the responders' storage is restored or rebuilt. Only
// the follower calls it, once the log has a leaf.
func (s *Service) loadLogTag(ctx context.Context) error {
	if s.logTag != "" {
		return nil
	}
	_, h, err := s.cfg.Log.Entry(ctx, 0)
	if err != nil {
		return fmt.Errorf("respond: reading the log's first entry for message ids: %w", err)
	}
	if len(h) < logTagLen {
		return fmt.Errorf("respond: the log's first entry has a %d-byte leaf hash", len(h))
	}
	s.logTag = hex.EncodeToString(h[:logTagLen])
	return nil
}

// messageID returns the id of a message of this log: its tag, an
// underscore and local, which tells the message apart within the log.
// No dot: Standard Webhooks signs "id.timestamp.body" and asks that an id
// hold no "." ("to prevent certain attacks").
func (s *Service) messageID(local string) string { return s.logTag + "_" + local }

// Sender delivers messages to one responder. Send makes one attempt;
// retrying, backoff and recording the outcome are the outbox's.
type Sender interface {
	Send(ctx context.Context, m *Message) Outcome
}

// Outcome is the result of one delivery attempt.
type Outcome struct {
	// Err is nil when the message was delivered.
	Err error
	// Status is the HTTP status answered, or a command's exit status
	// (-1 when it was killed); 0 when there was none (connection
	// refused).
	Status int
	// RetryAfter is the delay the receiver asked for (Retry-After), 0
	// if none.
	RetryAfter time.Duration
	// Gone reports that the endpoint no longer exists (HTTP 410): the
	// responder is disabled.
	Gone bool
	// Permanent reports that retrying the same message cannot succeed
	// (for instance PagerDuty rejected it as invalid): it is
	// dead-lettered at once.
	Permanent bool
	// Output is what a command printed (stdout and stderr), at most
	// event.MaxResponseOutput bytes.
	Output string
}
