// Package respond acts on the alerts in the log: it follows the log from a
// durable cursor (its own Badger directory, <data>/respond), keeps the
// alert feed and each alert's status (derived from the response leaves,
// never edited in place), delivers notifications to the configured
// responders (webhook per Standard Webhooks, Slack, PagerDuty Events v2,
// exec) from a durable outbox, at least once, and serves IP decisions to
// bouncers in the CrowdSec Local API's shape. Everything it does is
// recorded in the log as response leaves.
package respond
