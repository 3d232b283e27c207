package badgerutil

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// StorageMetrics is a Prometheus collector for one Badger database: the
// bytes it holds on disk, the shape of its LSM tree level by level with
// Badger's compaction scores, and the tables it has written since start.
// Badger's own metrics are process-wide expvars that cannot tell two
// databases apart, so the services keep them off and export these instead.
//
// The tables written count flushes and compactions: Badger numbers its
// tables in the order it writes them, so the highest number on disk, less
// the highest at start, is how many it has written, whatever it deleted
// meanwhile. A rate that rises with no rise in writes is compaction debt;
// level 0 approaching the stall setting warns of writes about to stop.
//
// Close it before closing the database: a scrape after Close reports
// nothing for the database and does not touch it.
type StorageMetrics struct {
	name     string
	db       *badger.DB
	dir      string
	valueDir string
	trigger  int // level-0 tables that start a compaction
	stall    int

	bytes, levelTables, levelBytes, levelScore, stallTables, tablesWritten *prometheus.Desc

	mu      sync.Mutex
	closed  bool
	startID uint64 // highest table number when the collector was made
	maxID   uint64 // highest table number seen
}

// NewStorageMetrics returns the collector for db, labelled db=name.
func NewStorageMetrics(name string, db *badger.DB) *StorageMetrics {
	opts := db.Opts()
	m := &StorageMetrics{name: name, db: db, dir: opts.Dir, valueDir: opts.ValueDir,
		trigger: opts.NumLevelZeroTables, stall: opts.NumLevelZeroTablesStall}
	// The database's name is a constant label, so that each database's
	// collector has descriptors of its own in one registry.
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, prometheus.Labels{"db": m.name})
	}
	m.bytes = desc("accessledger_storage_bytes",
		"Bytes a database holds on disk, by part: the tables of its LSM tree (lsm), its value log (value_log), the write-ahead logs of its memtables (memtable).",
		"part")
	m.levelTables = desc("accessledger_storage_level_tables",
		"Tables in each level of a database's LSM tree. Writes stall while level 0 holds accessledger_storage_level0_stall_tables of them.",
		"level")
	m.levelBytes = desc("accessledger_storage_level_bytes",
		"Bytes of the tables in each level of a database's LSM tree.",
		"level")
	m.levelScore = desc("accessledger_storage_level_compaction_score",
		"Badger's compaction score of each level of a database's LSM tree; a level is due for compaction from 1 on (level 0: its tables over the number that starts a compaction; the others: their bytes over the level's target).",
		"level")
	m.stallTables = desc("accessledger_storage_level0_stall_tables",
		"Level-0 tables at which a database stops taking writes until a compaction makes room (a setting).")
	m.tablesWritten = desc("accessledger_storage_tables_written_total",
		"Tables a database has written since start: each memtable flush and each output of a compaction is one.")
	m.startID = m.files().maxTable
	m.maxID = m.startID
	return m
}

// Describe implements prometheus.Collector.
func (m *StorageMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.bytes, m.levelTables, m.levelBytes, m.levelScore, m.stallTables, m.tablesWritten} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *StorageMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	var lsm int64
	for _, l := range m.db.Levels() {
		level := strconv.Itoa(l.Level)
		gauge(m.levelTables, float64(l.NumTables), level)
		gauge(m.levelBytes, float64(l.Size), level)
		gauge(m.levelScore, m.score(l), level)
		lsm += l.Size
	}
	f := m.files()
	m.maxID = max(m.maxID, f.maxTable)
	gauge(m.bytes, float64(lsm), "lsm")
	gauge(m.bytes, float64(f.vlog), "value_log")
	gauge(m.bytes, float64(f.mem), "memtable")
	gauge(m.stallTables, float64(m.stall))
	ch <- prometheus.MustNewConstMetric(m.tablesWritten, prometheus.CounterValue, float64(m.maxID-m.startID))
}

// score is Badger's compaction score of a level, as pickCompactLevels
// computes it (without the tables a running compaction is taking away):
// LevelInfo reports it only for the levels already at 1 or more.
func (m *StorageMetrics) score(l badger.LevelInfo) float64 {
	switch {
	case l.Level == 0:
		return float64(l.NumTables) / float64(max(m.trigger, 1))
	case l.TargetSize > 0:
		return float64(l.Size) / float64(l.TargetSize)
	}
	return 0
}

// Close stops the collector from touching the database; call it before
// closing the database.
func (m *StorageMetrics) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
}

// dirFiles is what a scan of a database's directories found.
type dirFiles struct {
	vlog, mem int64 // bytes allocated on disk
	maxTable  uint64
}

// files scans the database's directories: the value log and memtable
// files, which Badger creates at their full size and fills through a
// mapping, count by the blocks they occupy; the tables by their numbers.
// A file deleted during the scan is skipped.
func (m *StorageMetrics) files() dirFiles {
	var f dirFiles
	scan := func(dir string, tables bool) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			name := e.Name()
			switch filepath.Ext(name) {
			case ".sst":
				if !tables {
					continue
				}
				if id, err := strconv.ParseUint(strings.TrimSuffix(name, ".sst"), 10, 64); err == nil {
					f.maxTable = max(f.maxTable, id)
				}
			case ".vlog":
				if info, err := e.Info(); err == nil {
					f.vlog += allocated(info)
				}
			case ".mem":
				if info, err := e.Info(); err == nil {
					f.mem += allocated(info)
				}
			}
		}
	}
	scan(m.dir, true)
	if m.valueDir != m.dir {
		scan(m.valueDir, false)
	}
	return f
}
