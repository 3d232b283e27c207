package badgerutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
)

// gather scrapes reg into "name{label=value,...}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	got := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return got
}

// sstBytes is the size of the table files in dir, and how many there are.
func sstBytes(t *testing.T, dir string) (int64, int) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return -1, 0 // deleted by a compaction meanwhile
		}
		n += info.Size()
	}
	return n, len(paths)
}

func TestStorageMetrics(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).
		WithLogger(nil).
		WithMemTableSize(1 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(5).
		WithValueThreshold(1 << 10).
		WithValueLogFileSize(16 << 20).
		WithBaseTableSize(256 << 10).
		WithCompression(options.None).
		WithBlockCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := NewStorageMetrics("test", db)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)

	// Every database of a process reports into one registry.
	other, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := reg.Register(NewStorageMetrics("other", other)); err != nil {
		t.Fatalf("registering a second database's collector: %v", err)
	}

	got := gather(t, reg)
	if _, ok := got[`accessledger_storage_level0_stall_tables{db=other}`]; !ok {
		t.Errorf("the second database's metrics are missing: %v", got)
	}
	if v := got[`accessledger_storage_tables_written_total{db=test}`]; v != 0 {
		t.Errorf("tables written on a new database = %v, want 0", v)
	}
	if v := got[`accessledger_storage_level0_stall_tables{db=test}`]; v != 5 {
		t.Errorf("level0 stall tables = %v, want the setting, 5", v)
	}

	// Small values stay in the LSM tree and fill memtables, which Badger
	// flushes into level-0 tables; large ones go to the value log.
	const bigValues, bigSize = 100, 2 << 10
	put := func(from, n, size int) {
		t.Helper()
		wb := db.NewWriteBatch()
		for i := from; i < from+n; i++ {
			if err := wb.Set([]byte(fmt.Sprintf("k%08d", i)), make([]byte, size)); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 60000, 100)
	put(1_000_000, bigValues, bigSize)

	// Wait for the flushes and compactions to settle: the tables and
	// bytes the collector reports over all levels are then the table
	// files on disk, and the compactor has moved level 0 into the last
	// level (which a small database uses as its base level). The files
	// are counted in the same look as the metrics: under load a
	// compaction creates its next table (empty at first) at any moment,
	// and the tables can all still sit in level 0.
	levels := func(got map[string]float64) (tables, bytes float64) {
		for l := range db.Opts().MaxLevels {
			tables += got[fmt.Sprintf("accessledger_storage_level_tables{db=test,level=%d}", l)]
			bytes += got[fmt.Sprintf("accessledger_storage_level_bytes{db=test,level=%d}", l)]
		}
		return tables, bytes
	}
	var settled map[string]float64
	var files int
	deadline := time.Now().Add(20 * time.Second)
	for settled == nil && time.Now().Before(deadline) {
		got := gather(t, reg)
		onDisk, n := sstBytes(t, dir)
		tables, _ := levels(got)
		if n >= 2 && int(tables) == n && float64(onDisk) == got[`accessledger_storage_bytes{db=test,part=lsm}`] &&
			got[`accessledger_storage_level_bytes{db=test,level=6}`] > 0 {
			settled, files = got, n
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if settled == nil {
		onDisk, n := sstBytes(t, dir)
		t.Fatalf("the tables and LSM bytes reported never matched the %d table files on disk (%d bytes) with the last level filled: %v", n, onDisk, gather(t, reg))
	}
	_, levelBytes := levels(settled)
	if levelBytes != settled[`accessledger_storage_bytes{db=test,part=lsm}`] {
		t.Errorf("bytes over all levels = %v, want the LSM bytes %v", levelBytes, settled[`accessledger_storage_bytes{db=test,part=lsm}`])
	}
	if score := settled[`accessledger_storage_level_compaction_score{db=test,level=6}`]; score <= 0 {
		t.Errorf("compaction score of the last level, which holds %v bytes = %v, want above 0", settled[`accessledger_storage_level_bytes{db=test,level=6}`], score)
	}
	written := settled[`accessledger_storage_tables_written_total{db=test}`]
	if written < float64(files) {
		t.Errorf("tables written = %v, fewer than the %d table files", written, files)
	}
	l0 := settled[`accessledger_storage_level_tables{db=test,level=0}`]
	if score := settled[`accessledger_storage_level_compaction_score{db=test,level=0}`]; score != l0/2 {
		t.Errorf("level-0 compaction score = %v with %v tables, want tables/2 (the compaction trigger)", score, l0)
	}
	// The value log is created at twice its file size (32 MiB here) and
	// filled through a mapping: what counts is what it occupies.
	if v := settled[`accessledger_storage_bytes{db=test,part=value_log}`]; v < bigValues*bigSize || v > 4<<20 {
		t.Errorf("value log bytes = %v, want at least the %d bytes written to it and far below its 32 MiB apparent size", v, bigValues*bigSize)
	}
	if v := settled[`accessledger_storage_bytes{db=test,part=memtable}`]; v <= 0 || v > 4<<20 {
		t.Errorf("memtable bytes = %v, want the occupied part of the write-ahead logs (1 MiB memtables)", v)
	}

	// A compaction writes new tables: the count grows, whatever it deleted.
	if err := db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	put(2_000_000, 20000, 100)
	deadline = time.Now().Add(20 * time.Second)
	for {
		v := gather(t, reg)[`accessledger_storage_tables_written_total{db=test}`]
		if v > written {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables written stayed at %v after a compaction and more flushes", v)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Closed: nothing reported, the database not touched.
	m.Close()
	for k := range gather(t, reg) {
		if strings.Contains(k, "db=test") {
			t.Errorf("closed collector reported %s", k)
		}
	}
}
