package respond

import "time"

// Responder types.
const (
	TypeWebhook   = "webhook"
	TypeSlack     = "slack"
	TypePagerDuty = "pagerduty"
	TypeExec      = "exec"
)

// ResponderConfig configures one responder (the serve YAML's
// responders: list).
type ResponderConfig struct {
	// Name identifies the responder in metrics, response leaves and the
	// admin API; unique.
	Name string `yaml:"name" json:"name"`
	// Type is webhook, slack, pagerduty or exec.
	Type string `yaml:"type" json:"type"`
	// URL is where webhook and slack post; for pagerduty it overrides
	// the Events API v2 endpoint (https://events.pagerduty.com/v2/enqueue).
	URL string `yaml:"url" json:"url,omitempty"`
	// Secret signs webhooks (Standard Webhooks, whsec_<base64>).
	// SecretFile, if set instead, names a file holding it and, after it
	// (on the next lines, or after any whitespace), previous secrets.
	Secret     string `yaml:"secret" json:"-"`
	SecretFile string `yaml:"secret_file" json:"secret_file,omitempty"`
	// PreviousSecrets are secrets being rotated out: each message is
	// signed with every one of them too (Standard Webhooks: the
	// signatures, space-delimited, in one header), so that receivers
	// still holding one keep verifying until they have the new secret.
	PreviousSecrets []string `yaml:"previous_secrets" json:"-"`
	// RoutingKey is the PagerDuty integration key.
	RoutingKey string `yaml:"routing_key" json:"-"`
	// Command is the exec responder's program and arguments; it gets the
	// message as JSON on stdin. No shell is involved.
	Command []string `yaml:"command" json:"command,omitempty"`
	// Timeout bounds one attempt (default: delivery.timeout).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Filter selects the alerts sent to this responder.
	Filter Filter `yaml:"filter" json:"filter"`
	// Throttle, if set, sends at most one notification per rule and
	// group in each period of this length; the alerts held back are
	// counted and sent as one notification at the end of the period.
	Throttle time.Duration `yaml:"throttle" json:"throttle,omitempty"`
	// Lifecycle also sends alert.acknowledged and alert.resolved
	// notifications (always on for pagerduty, which needs them to
	// acknowledge and resolve its incidents).
	Lifecycle bool `yaml:"lifecycle" json:"lifecycle,omitempty"`
	// Digest also sends the daily digest.
	Digest bool `yaml:"digest" json:"digest,omitempty"`
}

// Filter selects alerts. An empty list selects everything; lists combine
// with AND.
type Filter struct {
	// Levels are alert levels (informational … critical).
	Levels []string `yaml:"levels" json:"levels,omitempty"`
	// Rules are rule ids.
	Rules []string `yaml:"rules" json:"rules,omitempty"`
	// Tags keep alerts whose rule has at least one of them.
	Tags []string `yaml:"tags" json:"tags,omitempty"`
}

// DeliveryConfig is the retry policy shared by all responders.
type DeliveryConfig struct {
	// Schedule is the delay before each attempt, the Standard Webhooks
	// schedule by default; attempts beyond it use its last delay. Each
	// delay gets up to 20 % of jitter.
	Schedule []time.Duration `yaml:"schedule" json:"schedule"`
	// MaxAttempts is how many attempts a message gets before it goes to
	// the dead-letter list.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// Timeout bounds one attempt.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// MaxQueued bounds each responder's outbox: a message that would
	// make it hold more goes straight to the dead-letter list, recorded
	// as given up for a full queue (but see queueFull in bounds.go for
	// an alert's later messages). 0 means the default.
	MaxQueued int `yaml:"max_queued" json:"max_queued"`
	// MaxDeadLetters bounds each responder's dead-letter list: a dead
	// letter that would make it hold more deletes the oldest (the log's
	// dead_lettered leaves still record them). 0 means the default.
	MaxDeadLetters int `yaml:"max_dead_letters" json:"max_dead_letters"`
}

// MaxBound is the largest bound of a responder's outbox or dead-letter
// list a configuration may set: more is a typo rather than a choice (ten
// million messages of a few KiB each are tens of GiB, per responder).
const MaxBound = 10_000_000

// DefaultDelivery returns the Standard Webhooks retry schedule: immediately,
// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h; and at most
// 100,000 messages queued and 100,000 dead letters per responder.
func DefaultDelivery() DeliveryConfig {
	return DeliveryConfig{
		Schedule: []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
			5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour},
		MaxAttempts:    10,
		Timeout:        15 * time.Second,
		MaxQueued:      100_000,
		MaxDeadLetters: 100_000,
	}
}
