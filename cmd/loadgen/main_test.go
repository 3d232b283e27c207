package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accessledger/accessledger/event"
)

// TestBodiesOut checks that -bodies-out writes the asked number of bodies,
// one per line, each an event the server's parser accepts, and varied as
// the workers' are (wrk sends them in turn).
func TestBodiesOut(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bodies.ndjson")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-mode", "single", "-id-fraction", "0", "-prepare", "500", "-bodies-out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("loadgen exited %d: %s", code, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	lines, actors := 0, map[string]bool{}
	for sc.Scan() {
		lines++
		ev, err := event.Parse(sc.Bytes(), event.ParseOptions{Now: time.Now()})
		if err != nil {
			t.Fatalf("body %d does not parse: %v\n%s", lines, err, sc.Bytes())
		}
		actors[ev.Actor.ID] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != 500 {
		t.Fatalf("%d bodies written, want 500", lines)
	}
	if len(actors) < 50 {
		t.Errorf("only %d actors in 500 bodies: the bodies do not vary as the workers' do", len(actors))
	}
}

// TestBodiesOutRefusesBatches: the bodies are single events.
func TestBodiesOutRefusesBatches(t *testing.T) {
	var stdout, stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "bodies.ndjson")
	if code := run([]string{"-mode", "batch", "-prepare", "10", "-bodies-out", out}, &stdout, &stderr); code != 2 {
		t.Fatalf("loadgen exited %d, want 2 (usage): %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "-bodies-out") {
		t.Errorf("error does not name -bodies-out: %s", stderr.String())
	}
}
