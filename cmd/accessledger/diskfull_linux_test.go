//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bulkyEvent is a valid event of about 20 KB that does not compress.
func bulkyEvent(rng *rand.Rand, n int) json.RawMessage {
	attrs := make(map[string]string)
	for k := range 20 {
		v := make([]byte, 1000)
		for i := range v {
			v[i] = byte('a' + rng.IntN(26))
		}
		attrs[fmt.Sprintf("a%d", k)] = string(v)
	}
	var ev map[string]any
	if err := json.Unmarshal(testEvent("", n), &ev); err != nil {
		panic(err)
	}
	ev["attributes"] = attrs
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// TestFullDiskRefusesAppends fills a real, small file system (a 200 MiB
// tmpfs) under the running server. Badger writes its logs through memory
// mappings, and on a full disk the kernel killed the server with SIGBUS in
// the middle of a commit. With min_free_disk_mib the server refuses
// appends first, with a 503 that says why, stays up and ready to read, and
// accepts again once there is room (here: a restart with a lower minimum).
// It needs to mount a file system (root); it is skipped elsewhere.
func TestFullDiskRefusesAppends(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=200m,mode=0700"); err != nil {
		t.Skipf("mounting a small tmpfs: %v (needs root)", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "data")
	s := startServer(t, dir, "--min-free-disk-mib", "64")

	rng := rand.New(rand.NewPCG(1, 2))
	var acked []postResult
	refused := ""
	for r := 0; r < 400 && refused == ""; r++ {
		events := make([]json.RawMessage, 40)
		for i := range events {
			events[i] = bulkyEvent(rng, r*40+i)
		}
		status, res, body, err := s.postEvents(t.Context(), "", events)
		switch {
		case err != nil:
			t.Fatalf("POST /v1/events %d on a filling disk: %v (server exited: %v)\nstderr:\n%s", r, err, s.exited(), s.stderr)
		case status == http.StatusCreated:
			acked = append(acked, res...)
		case status == http.StatusServiceUnavailable && strings.Contains(string(body), "disk is nearly full"):
			refused = string(body)
		default:
			t.Fatalf("POST /v1/events %d on a filling disk = %d %s, want 201 or 503 saying the disk is nearly full", r, status, body)
		}
	}
	if refused == "" {
		t.Fatalf("400 requests of 800 KB on a 200 MiB file system were all appended")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events appended, then refused with %d MiB free: %s", len(acked), st.Bavail*uint64(st.Bsize)>>20, refused)
	if status, body, _ := s.do(t.Context(), http.MethodGet, "/readyz", "", nil); status != http.StatusServiceUnavailable || !strings.Contains(string(body), "disk is nearly full") {
		t.Errorf("GET /readyz on a nearly full disk = %d %s, want 503 saying why", status, body)
	}
	if !strings.Contains(s.stderr.String(), "free disk space is below the minimum") {
		t.Errorf("server log does not say why appends stopped:\n%s", s.stderr)
	}
	// The server stays up, and serves what it acknowledged.
	time.Sleep(time.Second)
	if s.exited() {
		t.Fatalf("server exited on a nearly full disk:\n%s", s.stderr)
	}
	for _, i := range []int{0, len(acked) / 2, len(acked) - 1} {
		if _, leaf, err := s.entry(t.Context(), acked[i].Index); err != nil || leaf != decodeHash(t, "leaf_hash", acked[i].LeafHash) {
			t.Fatalf("entry %d on a nearly full disk: %v", acked[i].Index, err)
		}
	}
	if code := s.terminate(20 * time.Second); code != 0 {
		t.Fatalf("SIGTERM on a nearly full disk: exit code %d, want 0\n%s", code, s.stderr)
	}

	s = startServer(t, dir, "--min-free-disk-mib", "16")
	s.mustPost(testEvent("", 1<<20))
	if size := s.latestCheckpoint(); size.size < uint64(len(acked)) {
		t.Errorf("after restart the log has %d entries, want at least the %d acknowledged", size.size, len(acked))
	}
}
