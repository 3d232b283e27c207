package witness

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzAddCheckpoint sends arbitrary add-checkpoint bodies to a witness that
// has cosigned a log at size 5. The seeds are real requests with the log's
// signatures, so mutations of their old size and proof lines reach the
// consistency check. No body makes the witness panic or fail with an
// error other than the protocol's, and a checkpoint it cosigns from an
// old size it proves to be consistent with the tree the witness holds:
// checked with x/mod's tlog, not with the witness's own code.
func FuzzAddCheckpoint(f *testing.F) {
	lg := newTestLog(f, "log.example/a")
	lg.append(40, "a")
	bad := lg.request(5, 10)
	bad.Proof[0] = make([]byte, 32) // a proof that does not verify
	short := lg.request(5, 33)
	short.Proof = short.Proof[:len(short.Proof)-1]
	for _, r := range []AddRequest{lg.request(5, 10), lg.request(5, 5), lg.request(5, 33), lg.request(0, 12), lg.request(3, 10), lg.request(5, 4), bad, short,
		{OldSize: 5, Checkpoint: lg.checkpoint(10)}} {
		f.Add(r.Marshal())
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseAddRequest(body)
		if err != nil {
			return
		}
		w := newTestWitness(t, lg)
		if _, err := w.AddCheckpoint(context.Background(), lg.request(0, 5)); err != nil {
			t.Fatalf("AddCheckpoint(0 → 5) = %v", err)
		}
		_, err = w.AddCheckpoint(context.Background(), req)
		if classify(err) < 0 {
			t.Fatalf("AddCheckpoint(%q) = %v, not an error of the protocol", body, err)
		}
		if err != nil {
			return
		}
		size, ok := checkpointSize(req.Checkpoint)
		if !ok {
			t.Fatalf("AddCheckpoint(%q) cosigned what is not a checkpoint", body)
		}
		if size == 5 {
			return
		}
		if req.OldSize != 5 {
			t.Fatalf("AddCheckpoint(%q) cosigned size %d from old size %d; the witness is at 5", body, size, req.OldSize)
		}
		proof := make(tlog.TreeProof, len(req.Proof))
		for i, h := range req.Proof {
			copy(proof[i][:], h)
		}
		var oldRoot, newRoot tlog.Hash
		copy(oldRoot[:], lg.root(5))
		copy(newRoot[:], lg.root(int64(size)))
		if err := tlog.CheckTree(proof, int64(size), newRoot, 5, oldRoot); err != nil {
			t.Errorf("AddCheckpoint(%q) cosigned size %d with a proof tlog refuses: %v", body, size, err)
		}
	})
}

// checkpointSize reads the tree size of a signed checkpoint: its second
// line.
func checkpointSize(signed []byte) (int64, bool) {
	lines := strings.SplitN(string(signed), "\n", 3)
	if len(lines) < 3 {
		return 0, false
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	return size, err == nil
}
