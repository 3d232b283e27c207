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

// serverSample is what the server had done at one moment of the run.
type serverSample struct {
	at     time.Duration      // since the clock started
	cpu    time.Duration      // the server's CPU time; with -pid only
	cpuOK  bool               // cpu was read
	tables map[string]float64 // tables written, by database; nil if /metrics was not read
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
	tables, err := s.tables()
	sm.tables = tables
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
	}
	s.samples = append(s.samples, sm)
}

// tables reads the tables written per database from the server's metrics.
func (s *serverSampler) tables() (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	if s.key != "" {
		req.Header.Set("Authorization", "Bearer "+s.key)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseTablesWritten(resp.Body)
}

// parseTablesWritten returns tablesMetric by its db label from metrics in
// Prometheus's text format; an empty map if the server has none.
func parseTablesWritten(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	out := map[string]float64{}
	if mf := mfs[tablesMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "db" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out, nil
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
	}
}
