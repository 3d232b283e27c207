//go:build !unix

package api

import "os"

// Flags of readPlain, none here.
const (
	oNonBlock = 0
	oNoFollow = 0
)

// isLinkRefused reports that no link is refused here.
func isLinkRefused(err error) bool { return false }

// lockFile only creates the lock file where flock is not available:
// changes of one process are still serialised by KeyFile.mu. Files have
// no owner to keep here: uid and gid are ignored.
func lockFile(path string, uid, gid int) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// fileOwner reports that files have no owner to keep here.
func fileOwner(fi os.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
