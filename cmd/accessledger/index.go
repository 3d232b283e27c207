package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/accessledger/accessledger/api"
	evbundle "github.com/accessledger/accessledger/client/evidence"
	"github.com/accessledger/accessledger/ledger"
	"github.com/accessledger/accessledger/ledger/index"
	"github.com/accessledger/accessledger/witness"
)

// indexDir is the query index's own Badger directory in the data
// directory: derived data, rebuilt from the log if removed.
const indexDir = "index"

// runningIndex is the query index and its follower, started by serve.
type runningIndex struct {
	x    *index.Index
	stop func() error
}

// startIndex opens the query index in <data>/index and starts following
// the log (it catches up from where it stopped). Without indexing it
// returns an index that serves nothing. stop ends the follower, after it
// has written what it indexed, and closes the index; serve calls it after
// the HTTP server has stopped and before the ledger closes.
func startIndex(cfg Config, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) (*runningIndex, error) {
	if !cfg.Index {
		return &runningIndex{stop: func() error { return nil }}, nil
	}
	x, err := index.Open(context.Background(), index.Config{
		Dir:        filepath.Join(cfg.Data, indexDir),
		Log:        l,
		Logger:     log.With("component", "index"),
		Registerer: reg,
		MaxLag:     uint64(cfg.IndexMaxLag),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	size, _ := l.Size()
	log.Info("indexing", "indexed_size", x.Size(), "log_size", size)
	return &runningIndex{x: x, stop: func() error {
		cancel()
		err := <-done
		if errors.Is(err, ledger.ErrClosed) {
			err = nil
		}
		return errors.Join(err, x.Close())
	}}, nil
}

// searcher returns what the API queries, nil without indexing.
func (r *runningIndex) searcher() api.Searcher {
	if r.x == nil {
		return nil
	}
	return r.x
}

// cosignedCheckpoint makes evidence bundles use the checkpoint witnessing
// serves (GET /checkpoint), with the cosignatures of the policy's
// witnesses; nil without witnessing.
func cosignedCheckpoint(w api.Witnessing, p *witness.Policy, l *ledger.Ledger) api.CosignedCheckpoint {
	if w == nil || p == nil {
		return nil
	}
	var keys []string
	for _, pw := range p.Witnesses {
		keys = append(keys, pw.VKey)
	}
	return func(ctx context.Context) ([]byte, []string, error) {
		cp, err := w.Checkpoint()
		if err != nil {
			// No quorum yet (witness.ErrNoQuorum): no evidence, as no
			// /checkpoint, unless witness_fail_open, with which
			// Checkpoint serves the latest. Evidence proved against a
			// checkpoint no witness saw is what witnessing is there
			// to prevent.
			return nil, nil, err
		}
		n, ks, err := evbundle.Cosigned(cp, l.VerifierKey(), keys)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the cosigned checkpoint: %w", err)
		}
		return n, ks, nil
	}
}
