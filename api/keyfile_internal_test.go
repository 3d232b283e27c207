package api

import (
	"errors"
	"strings"
	"testing"
)

// TestChownFor: the file written in place of the keys file keeps its
// owner and group when root writes it, the group when its owner does, and
// is refused to anyone else, with a message saying whom to run as; a new
// file (none before) is root's gift to the directory's owner.
func TestChownFor(t *testing.T) {
	member := func(gid int) bool { return gid == 100 }
	for _, tc := range []struct {
		name             string
		euid             int
		uid, gid         int
		exists           bool
		wantUID, wantGID int
		wantErr          bool
	}{
		{name: "root, another user's file", euid: 0, uid: 65534, gid: 65534, exists: true, wantUID: 65534, wantGID: 65534},
		{name: "root, new file in another user's directory", euid: 0, uid: 65534, gid: 65534, wantUID: 65534, wantGID: 65534},
		{name: "root, its own file", euid: 0, uid: 0, gid: 0, exists: true, wantUID: 0, wantGID: 0},
		{name: "owner, a group of its own", euid: 1000, uid: 1000, gid: 100, exists: true, wantUID: -1, wantGID: 100},
		{name: "owner, a group not its own", euid: 1000, uid: 1000, gid: 200, exists: true, wantUID: -1, wantGID: -1},
		{name: "another user", euid: 1000, uid: 65534, gid: 100, exists: true, wantErr: true},
		{name: "another user, root's file", euid: 1000, uid: 0, gid: 0, exists: true, wantErr: true},
		{name: "another user, new file", euid: 1000, uid: 65534, gid: 65534, wantUID: -1, wantGID: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid, err := chownFor("/srv/al/api_keys.yaml", tc.euid, member, tc.uid, tc.gid, tc.exists)
			if tc.wantErr {
				if msg := errStr(err); !errors.Is(err, ErrKeyFileOwner) || !strings.Contains(msg, "/srv/al/api_keys.yaml") ||
					!strings.Contains(msg, "sudo -u ") || !strings.Contains(msg, "or as root") {
					t.Errorf("chownFor() = %d, %d, %v; want ErrKeyFileOwner naming the file and whom to run as", uid, gid, err)
				}
				return
			}
			if err != nil || uid != tc.wantUID || gid != tc.wantGID {
				t.Errorf("chownFor() = %d, %d, %v; want %d, %d, nil", uid, gid, err, tc.wantUID, tc.wantGID)
			}
		})
	}
}

func errStr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
