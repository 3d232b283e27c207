package witness

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/internal/badgerutil"
)

// metrics are the witness's Prometheus metrics.
type metrics struct {
	reg      prometheus.Registerer
	requests *prometheus.CounterVec
	evidence *prometheus.CounterVec
	sizes    *prometheus.GaugeVec
	storage  *badgerutil.StorageMetrics // nil without a registerer
}

func newMetrics(w *Witness, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_witness_add_checkpoint_total",
			Help: "add-checkpoint requests, by result (cosigned, conflict, inconsistent, bad_signature, unknown_log, malformed, error).",
		}, []string{"result"}),
		evidence: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessledger_witness_evidence_total",
			Help: "Refused, validly signed checkpoints kept as evidence, by reason.",
		}, []string{"reason"}),
		sizes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "accessledger_witness_log_size",
			Help: "Size of the latest checkpoint cosigned since start, by log origin (trusted logs only).",
		}, []string{"origin"}),
	}
	if reg != nil {
		m.storage = badgerutil.NewStorageMetrics("witness", w.db)
		for i, c := range []prometheus.Collector{m.requests, m.evidence, m.sizes, m.storage} {
			if err := reg.Register(c); err != nil {
				for _, d := range []prometheus.Collector{m.requests, m.evidence, m.sizes}[:i] {
					reg.Unregister(d)
				}
				return nil, fmt.Errorf("witness: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	if m.reg != nil {
		m.storage.Close() // before the storage closes: a scrape may be running
		m.reg.Unregister(m.storage)
		m.reg.Unregister(m.requests)
		m.reg.Unregister(m.evidence)
		m.reg.Unregister(m.sizes)
	}
}

func (m *metrics) count(_ []byte, err error) {
	var conflict *ConflictError
	result := "cosigned"
	switch {
	case err == nil:
	case errors.As(err, &conflict):
		result = "conflict"
	case errors.Is(err, ErrInconsistent):
		result = "inconsistent"
	case errors.Is(err, ErrBadSignature):
		result = "bad_signature"
	case errors.Is(err, ErrUnknownLog):
		result = "unknown_log"
	case errors.Is(err, ErrMalformed):
		result = "malformed"
	default:
		result = "error"
	}
	m.requests.WithLabelValues(result).Inc()
}

func (m *metrics) setSize(origin string, size uint64) {
	m.sizes.WithLabelValues(origin).Set(float64(size))
}

// resetLogs forgets the per-log gauges (the trusted logs changed).
func (m *metrics) resetLogs() { m.sizes.Reset() }
