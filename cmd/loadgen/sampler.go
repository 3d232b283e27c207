package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// tablesMetric counts, per database of the server, the tables Badger has
// written: memtable flushes and compaction outputs.
const tablesMetric = "accessledger_storage_tables_written_total"

// Other work of the server's that can take a window's CPU or explain its
// latency, by the name a window reports it under: the Go collector's
// cycles; the detector's state snapshots (count, and seconds spent
// writing them), which grow with the state; and the log's commits (count,
// and seconds from sequencing to the end of the sync), which every append
// waits for.
const (
	gcCycles          = "gc_cycles"
	detectorSnapshots = "detector_snapshots"
	detectorSnapSecs  = "detector_snapshot_seconds"
	commits           = "commits"
	commitSecs        = "commit_seconds"
)

// serverSample is what the server had done at one moment of the run.
type serverSample struct {
	at     time.Duration      // since the clock started
	cpu    time.Duration      // the server's CPU time; with -pid only
	cpuOK  bool               // cpu was read
	tables map[string]float64 // tables written, by database; nil if /metrics was not read
	work   map[string]float64 // gcCycles, detectorSnapshots, detectorSnapSecs; nil likewise
}

// serverSampler reads, once a window while the load runs, the server's
// CPU time (-pid) and how many tables each of its databases has written
// (from /metrics, with -key), so that each window of the summary shows
// what the server was doing while it was slow: compacting, for one.
type serverSampler struct {
	pid     int
	client  *http.Client
	url     string // the server's /metrics
	key     string
	start   time.Time
	quit    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []serverSample
	lastErr error // the last failed read of /metrics
}

func startServerSampler(client *http.Client, base, key string, pid int, every time.Duration, start time.Time) *serverSampler {
	s := &serverSampler{pid: pid, client: client, url: base + "/metrics", key: key, start: start,
		quit: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

// stop ends the sampling, takes a last sample and returns them all.
func (s *serverSampler) stop() ([]serverSample, error) {
	close(s.quit)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.lastErr
}

func (s *serverSampler) sample() {
	sm := serverSample{at: time.Since(s.start)}
	if s.pid > 0 {
		var err error
		sm.cpu, err = procCPUTime(s.pid)
		sm.cpuOK = err == nil
	}
	tables, work, err := s.metrics()
	sm.tables, sm.work = tables, work
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
	}
	s.samples = append(s.samples, sm)
}

// metrics reads the tables written per database and the other work from
// the server's metrics.
func (s *serverSampler) metrics() (tables, work map[string]float64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, nil, err
	}
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseServerMetrics(resp.Body)
}

// parseServerMetrics returns tablesMetric by its db label, and the other
// work (gcCycles, detectorSnapshots, detectorSnapSecs, commits,
// commitSecs), from metrics in
// Prometheus's text format. What the server does not report is absent.
func parseServerMetrics(r io.Reader) (tables, work map[string]float64, err error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, nil, fmt.Errorf("GET /metrics: %w", err)
	}
	tables, work = map[string]float64{}, map[string]float64{}
	if mf := mfs[tablesMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "db" {
					tables[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if mf := mfs["go_gc_duration_seconds"]; mf != nil && len(mf.GetMetric()) > 0 {
		work[gcCycles] = float64(mf.GetMetric()[0].GetSummary().GetSampleCount())
	}
	if mf := mfs["accessledger_detect_state_save_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == "snapshot" {
					work[detectorSnapshots] = float64(m.GetHistogram().GetSampleCount())
					work[detectorSnapSecs] = m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	if mf := mfs["accessledger_commit_latency_seconds"]; mf != nil && len(mf.GetMetric()) > 0 {
		h := mf.GetMetric()[0].GetHistogram()
		work[commits] = float64(h.GetSampleCount())
		work[commitSecs] = h.GetSampleSum()
	}
	return tables, work, nil
}

// attach gives each window the server's CPU and the tables written
// during it, from the samples nearest its ends.
func attach(ws []window, samples []serverSample, size time.Duration) {
	if len(samples) < 2 {
		return
	}
	nearest := func(at time.Duration) serverSample {
		best := samples[0]
		for _, s := range samples[1:] {
			if (s.at - at).Abs() < (best.at - at).Abs() {
				best = s
			}
		}
		return best
	}
	for k := range ws {
		a, b := nearest(time.Duration(k)*size), nearest(time.Duration(k+1)*size)
		if b.at <= a.at {
			continue
		}
		if a.cpuOK && b.cpuOK {
			ws[k].ServerCPUCores = (b.cpu - a.cpu).Seconds() / (b.at - a.at).Seconds()
		}
		if a.tables != nil && b.tables != nil {
			ws[k].TablesWritten = map[string]float64{}
			for db, n := range b.tables {
				ws[k].TablesWritten[db] = n - a.tables[db]
			}
		}
		if a.work != nil && b.work != nil {
			ws[k].ServerWork = map[string]float64{}
			for name, n := range b.work {
				ws[k].ServerWork[name] = n - a.work[name]
			}
		}
	}
}
