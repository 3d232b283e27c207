// Package detect is accessledger's detection engine: Sigma rules and Sigma
// correlation rules over the access events of the log, compiled into fast
// matchers, evaluated on event time with bounded state, and raising alerts
// with stable dedup keys.
//
// Rules are YAML documents in the SigmaHQ format (rules specification v2,
// correlation rules specification v2) over accessledger's log source
// (logsource: {product: accessledger, category: ...}), whose field names
// are the event's dotted paths (actor.id, source.ip, ...; see Fields).
// Where Sigma has no correlation type for what access logs need, the
// package adds documented extensions (new_term, geo_velocity, baseline)
// and rule metadata (suppress, exceptions, response, tests). Everything of
// Sigma it does not support, and every field it does not know, is
// rejected with the file, the line and the feature named (ErrUnsupported,
// ErrInvalid).
//
// LoadRules parses rule files into a RuleSet; Compile turns a RuleSet into
// an Engine, which processes events one at a time (Engine.Process) and is
// owned by one goroutine. A Detector follows a ledger from a durable
// cursor, feeds an Engine, appends its alerts to the ledger as leaves of
// kind alert with dedup keys, and saves the engine's state together with
// the cursor, so that a restart neither misses a leaf nor raises an alert
// twice. The package knows nothing of HTTP.
package detect
