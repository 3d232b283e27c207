package badgerutil

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestRemoveTornFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{"00001.mem": 0, "00002.mem": 10, "000001.vlog": 0, "000002.vlog": 20, "MANIFEST": 0, "000003.sst": 0}
	for name, size := range files {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTornFiles(dir, nil); err != nil {
		t.Fatalf("RemoveTornFiles(%s) = %v", dir, err)
	}
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"000002.vlog", "000003.sst", "00002.mem", "MANIFEST"}
	if !slices.Equal(got, want) {
		t.Errorf("after RemoveTornFiles, directory holds %v, want %v", got, want)
	}
	if err := RemoveTornFiles(filepath.Join(dir, "missing"), nil); err != nil {
		t.Errorf("RemoveTornFiles(missing directory) = %v, want nil", err)
	}
}

// TestOpenLabelsBadgerGoroutines: Badger's background goroutines carry the
// database's name as a profiler label, so CPU profiles tell databases
// apart.
func TestOpenLabelsBadgerGoroutines(t *testing.T) {
	db, err := Open("labelled", badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// debug=1 groups goroutines by stack and labels, each group headed
	// by its count and a "# labels:" line. A goroutine that has not run
	// yet shows no frame but goexit: on a busy machine Badger's may not
	// have, so look again until they show.
	var buf bytes.Buffer
	var labelled, unlabelled int
	for deadline := time.Now().Add(10 * time.Second); labelled+unlabelled == 0 && time.Now().Before(deadline); {
		buf.Reset()
		if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
			t.Fatal(err)
		}
		for _, group := range strings.Split(buf.String(), "\n\n") {
			if !strings.Contains(group, "badger/v4.(*DB).doWrites") && !strings.Contains(group, "badger/v4.(*levelsController).runCompactor") {
				continue
			}
			if strings.Contains(group, "\n# labels: {\"db\":\"labelled\"}\n") {
				labelled++
			} else {
				unlabelled++
			}
		}
		if labelled+unlabelled == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if labelled == 0 || unlabelled > 0 {
		t.Errorf("Badger's write and compaction goroutines: %d labelled db=labelled, %d not; want all\n%s", labelled, unlabelled, buf.String())
	}
}
