package badgerutil

import (
	"bytes"
	"errors"
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

// TestOpenRefusesDataWithoutManifest: a directory whose MANIFEST was
// removed is refused before Badger opens it, which would delete its
// tables; its files stay as they were, and it opens again once the
// MANIFEST is back.
func TestOpenRefusesDataWithoutManifest(t *testing.T) {
	dir := t.TempDir()
	opts := badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(1 << 10)
	db, err := Open("test", opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if err := db.Update(func(txn *badger.Txn) error {
			return txn.Set([]byte{byte(i >> 8), byte(i)}, bytes.Repeat([]byte{'v'}, 600))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		es, _ := os.ReadDir(dir)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	before := list()
	if !slices.ContainsFunc(before, func(n string) bool { return strings.HasSuffix(n, ".sst") }) {
		t.Fatalf("no table written: %v", before)
	}
	if _, err := Open("test", opts); !errors.Is(err, ErrNoManifest) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("Open without MANIFEST = %v, want ErrNoManifest", err)
	}
	if after := list(); !slices.Equal(after, before) {
		t.Fatalf("files after the refused open = %v, want %v", after, before)
	}
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err = Open("test", opts)
	if err != nil {
		t.Fatalf("Open with the MANIFEST back = %v", err)
	}
	defer db.Close()
	if err := db.View(func(txn *badger.Txn) error { _, err := txn.Get([]byte{11, 183}); return err }); err != nil {
		t.Errorf("reading a key after the MANIFEST is back: %v", err)
	}
}
