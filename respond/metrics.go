package respond

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus metrics.
type metrics struct {
	alerts       prometheus.Counter
	badLeaves    prometheus.Counter
	recorded     prometheus.Counter
	followErrors prometheus.Counter
	attempts     *prometheus.CounterVec // responder, result
	failures     *prometheus.CounterVec // responder
	deadLettered *prometheus.CounterVec // responder
	queueFull    *prometheus.CounterVec // responder
	deadDropped  *prometheus.CounterVec // responder
	throttled    *prometheus.CounterVec // responder
	latency      *prometheus.HistogramVec
	attemptTime  *prometheus.HistogramVec
	lag          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	m := &metrics{
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_respond_alerts_total", Help: "Alert leaves processed by the responders."}),
		badLeaves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_respond_undecodable_leaves_total", Help: "Alert or response leaves the responders could not decode (skipped)."}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_respond_recorded_total", Help: "Response leaves appended to the log by the responders."}),
		followErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_respond_follow_errors_total", Help: "Reads of the log that failed and were retried by the responders."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_delivery_attempts_total", Help: "Delivery attempts, by responder and result (delivered, failed)."}, []string{"responder", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_delivery_failures_total", Help: "Failed delivery attempts, by responder and status (0: no answer)."}, []string{"responder", "status"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_delivery_dead_lettered_total", Help: "Messages given up on and put in the dead-letter list, by responder."}, []string{"responder"}),
		queueFull: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_delivery_queue_full_total",
			Help: "Messages put straight into the dead-letter list, without an attempt, because the responder's outbox held delivery.max_queued messages (counted in accessledger_delivery_dead_lettered_total too), by responder."},
			[]string{"responder"}),
		deadDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_delivery_dead_letters_dropped_total",
			Help: "Oldest dead letters deleted because the responder's dead-letter list held delivery.max_dead_letters (their dead_lettered leaves stay in the log), by responder."},
			[]string{"responder"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_delivery_throttled_total", Help: "Alerts held back by throttling (sent later as one counted notification), by responder."}, []string{"responder"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "accessledger_delivery_latency_seconds",
			Help:    "Time from an alert's leaf (or the thing notified) to its delivery, by responder.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 18)}, []string{"responder"}),
		attemptTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "accessledger_delivery_attempt_duration_seconds",
			Help:    "Duration of one delivery attempt, by responder.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"responder"}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accessledger_respond_lag_entries", Help: "Committed leaves the responders have not processed yet."}),
	}
	if reg == nil {
		return m, nil
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accessledger_delivery_queue_depth", Help: "Messages waiting in all responders' outboxes."},
		func() float64 {
			n := 0
			for _, r := range s.responders {
				n += int(r.queued.Load())
			}
			return float64(n)
		})
	running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accessledger_respond_running", Help: "1 while the responders' service runs; 0 once it stopped on an error (see the server log and GET /v1/responders)."},
		func() float64 {
			if s.Status().Running {
				return 1
			}
			return 0
		})
	// Each configured responder's counters exist from the start, at 0,
	// so that a rule on their rate sees the first one.
	for _, r := range s.responders {
		m.deadLettered.WithLabelValues(r.cfg.Name)
		m.queueFull.WithLabelValues(r.cfg.Name)
		m.deadDropped.WithLabelValues(r.cfg.Name)
		m.throttled.WithLabelValues(r.cfg.Name)
		m.attempts.WithLabelValues(r.cfg.Name, "delivered")
		m.attempts.WithLabelValues(r.cfg.Name, "failed")
	}
	maxQueued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accessledger_delivery_max_queued", Help: "The bound of each responder's outbox (delivery.max_queued)."},
		func() float64 { return float64(s.cfg.Delivery.MaxQueued) })
	maxDead := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "accessledger_delivery_max_dead_letters", Help: "The bound of each responder's dead-letter list (delivery.max_dead_letters)."},
		func() float64 { return float64(s.cfg.Delivery.MaxDeadLetters) })
	perResponder := newQueueCollector(s)
	for _, c := range []prometheus.Collector{m.alerts, m.badLeaves, m.recorded, m.followErrors, m.attempts, m.failures,
		m.deadLettered, m.queueFull, m.deadDropped, m.throttled, m.latency, m.attemptTime, m.lag, depth, maxQueued, maxDead,
		running, perResponder} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, fmt.Errorf("respond: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) attempt(responder string, out Outcome, took time.Duration) {
	m.attemptTime.WithLabelValues(responder).Observe(took.Seconds())
	if out.Err == nil {
		m.attempts.WithLabelValues(responder, "delivered").Inc()
		return
	}
	m.attempts.WithLabelValues(responder, "failed").Inc()
	m.failures.WithLabelValues(responder, strconv.Itoa(out.Status)).Inc()
}

func (m *metrics) delivered(responder string, latency time.Duration) {
	m.latency.WithLabelValues(responder).Observe(max(0, latency.Seconds()))
}

func (m *metrics) updateLag(s *Service) {
	size, _ := s.cfg.Log.Size()
	if c := s.cursor.Load(); size > c {
		m.lag.Set(float64(size - c))
	} else {
		m.lag.Set(0)
	}
}

// queueCollector reports each responder's queue depth, dead letters and
// whether it is disabled, and the messages responders no longer
// configured left.
type queueCollector struct {
	s        *Service
	depth    *prometheus.Desc
	dead     *prometheus.Desc
	disabled *prometheus.Desc
	orphaned *prometheus.Desc
}

func newQueueCollector(s *Service) *queueCollector {
	return &queueCollector{s: s,
		depth:    prometheus.NewDesc("accessledger_delivery_responder_queue_depth", "Messages waiting in a responder's outbox.", []string{"responder"}, nil),
		dead:     prometheus.NewDesc("accessledger_delivery_responder_dead_letters", "Messages in a responder's dead-letter list.", []string{"responder"}, nil),
		disabled: prometheus.NewDesc("accessledger_delivery_responder_disabled", "1 if the responder is disabled (its endpoint answered 410 Gone).", []string{"responder"}, nil),
		orphaned: prometheus.NewDesc("accessledger_delivery_orphaned_messages",
			"Messages kept undelivered for a responder no longer in the configuration (renamed or removed), as found at start, by state (queued, dead_letter, throttled: alerts held back by throttling).",
			[]string{"responder", "state"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.dead
	ch <- c.disabled
	ch <- c.orphaned
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.s.responders {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(r.queued.Load()), r.cfg.Name)
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(r.dead.Load()), r.cfg.Name)
		d := 0.0
		if r.disabled.Load() {
			d = 1
		}
		ch <- prometheus.MustNewConstMetric(c.disabled, prometheus.GaugeValue, d, r.cfg.Name)
	}
	for _, o := range c.s.orphanList() {
		ch <- prometheus.MustNewConstMetric(c.orphaned, prometheus.GaugeValue, float64(o.queued), o.name, "queued")
		ch <- prometheus.MustNewConstMetric(c.orphaned, prometheus.GaugeValue, float64(o.dead), o.name, "dead_letter")
		ch <- prometheus.MustNewConstMetric(c.orphaned, prometheus.GaugeValue, float64(o.held), o.name, "throttled")
	}
}
