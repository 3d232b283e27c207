package witness

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStorageMetrics: the witness reports its database with the server's
// others, and reopening it in the same process registers them again.
func TestStorageMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Dir: t.TempDir(), Signer: testCosigner(t, "witness.example/w1"), Registerer: reg}
	stall := func() (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("Gather() = %v", err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "accessledger_storage_level0_stall_tables" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "db" && l.GetValue() == "witness" {
						return m.GetGauge().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	for round := range 2 {
		open := Create
		if round > 0 {
			open = Open
		}
		w, err := open(context.Background(), cfg)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if v, ok := stall(); !ok || v < 1 {
			t.Errorf("round %d: level0 stall tables of db=witness = %v (present %v), want Badger's setting", round, v, ok)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := stall(); ok {
			t.Errorf("round %d: the closed witness's storage is still reported", round)
		}
	}
}
