package ledger

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/internal/badgerutil"
)

// metrics are the ledger's Prometheus instruments. They exist (and are
// cheap to update) even when no registerer was given.
type metrics struct {
	appended       prometheus.Counter
	commits        prometheus.Counter
	pushbacks      prometheus.Counter
	commitFailures prometheus.Counter
	signFailures   prometheus.Counter
	trims          prometheus.Counter
	batchSize      prometheus.Histogram
	commitLatency  prometheus.Histogram

	storage    *badgerutil.StorageMetrics
	reg        prometheus.Registerer
	collectors []prometheus.Collector // registered with reg
}

func newMetrics(l *Ledger, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_appended_entries_total",
			Help: "Entries appended to the log (duplicates excluded).",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_commits_total",
			Help: "Synced storage transactions that appended entries.",
		}),
		pushbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_pushback_total",
			Help: "Append calls refused because the queue was full.",
		}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_commit_failures_total",
			Help: "Storage commits that failed; after one the ledger stops accepting appends until restarted.",
		}),
		signFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_checkpoint_sign_failures_total",
			Help: "Checkpoint signatures that failed or timed out.",
		}),
		trims: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessledger_storage_trims_total",
			Help: "Times the storage's mapped pages were dropped from RSS (and the page cache): those of its logs when file-backed RSS exceeded half of storage_trim_above_mib, all of them when it exceeded storage_trim_above_mib.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "accessledger_batch_size_entries",
			Help:    "Entries appended per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "accessledger_commit_latency_seconds",
			Help:    "Time to sequence, write and sync one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg == nil {
		return m, nil
	}
	m.reg = reg
	m.storage = badgerutil.NewStorageMetrics("ledger", l.db)
	m.collectors = []prometheus.Collector{m.appended, m.commits, m.pushbacks, m.commitFailures, m.signFailures, m.trims, m.batchSize, m.commitLatency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_queue_depth_bytes",
			Help: "Memory held by entries waiting for the sequencer.",
		}, func() float64 { _, b := l.queueDepth(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_storage_free_bytes",
			Help: "Free space of the file system holding the log, as last checked; appends are refused below min_free_disk_mib.",
		}, func() float64 { return float64(l.disk.Load().free) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_bundle_cache_bytes",
			Help: "Decompressed entry bundles cached for reads.",
		}, func() float64 { return float64(l.bundles.Bytes()) }),
		m.storage,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_healthy",
			Help: "1 if the ledger accepts appends, 0 if it stopped (storage failure, repeated signing failures) or is closing.",
		}, func() float64 {
			if l.Healthy() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_queue_depth_entries",
			Help: "Entries waiting for the sequencer.",
		}, func() float64 { return float64(l.QueueDepth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_tree_size_entries",
			Help: "Durable tree size.",
		}, func() float64 { s, _ := l.Size(); return float64(s) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_hash_runs_entries",
			Help: "Entries whose leaf hashes are in hash runs (lookups by leaf hash scan the level-0 tiles of those after them).",
		}, func() float64 { return float64(l.runs.Load() << l.chunkBits()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_checkpoint_size_entries",
			Help: "Tree size of the latest signed checkpoint.",
		}, func() float64 {
			if cp := l.Latest(); cp != nil {
				return float64(cp.Size)
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "accessledger_checkpoint_age_seconds",
			Help: "Seconds since the latest checkpoint was signed.",
		}, func() float64 {
			if cp := l.Latest(); cp != nil && !cp.SignedAt.IsZero() {
				return l.cfg.Clock().Sub(cp.SignedAt).Seconds()
			}
			return 0
		}),
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			m.collectors = m.collectors[:i]
			m.unregister()
			return nil, fmt.Errorf("ledger: registering metrics: %w", err)
		}
	}
	return m, nil
}

// unregister removes the metrics from the registerer, so that the same
// registerer can serve a ledger opened again in this process.
func (m *metrics) unregister() {
	if m.storage != nil {
		m.storage.Close() // before the storage closes: a scrape may be running
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}

func (m *metrics) observeCommit(n int, d time.Duration) {
	if n == 0 {
		return
	}
	m.appended.Add(float64(n))
	m.commits.Inc()
	m.batchSize.Observe(float64(n))
	m.commitLatency.Observe(d.Seconds())
}
