package badgerutil

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
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
