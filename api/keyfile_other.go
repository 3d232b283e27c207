//go:build !unix

package api

import "os"

// lockFile only creates the lock file where flock is not available:
// changes of one process are still serialised by KeyFile.mu.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}
