//go:build unix

package api

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Flags of readPlain: a FIFO or a device is not waited on, and a
// symbolic link is refused where it must not be followed.
const (
	oNonBlock = syscall.O_NONBLOCK
	oNoFollow = syscall.O_NOFOLLOW
)

// isLinkRefused reports whether err is that of opening a symbolic link
// with oNoFollow.
func isLinkRefused(err error) bool { return errors.Is(err, syscall.ELOOP) }

// lockFile takes an exclusive advisory lock on path (created, mode 0600,
// if missing) and returns its release. The lock is the open file's: it
// excludes other processes and other opens in this one. uid and gid, as
// os.Chown (-1: leave), are given to the file: the keys file's owner and
// group, so that a lock file root made stays usable by the server. A
// symbolic link, or a file with other names (a hard link), is refused
// there: whoever can write the directory (the server's user) could
// otherwise have root give them any file.
func lockFile(path string, uid, gid int) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if uid != -1 || gid != -1 {
		var st syscall.Stat_t
		err := syscall.Fstat(int(f.Fd()), &st)
		if err == nil && (st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1) {
			err = fmt.Errorf("%s is not a plain file of its own (a hard link?): remove it", path)
		}
		if err == nil {
			err = f.Chown(uid, gid)
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// fileOwner returns the owner and group of the file fi describes.
func fileOwner(fi os.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
