//go:build !unix

package ledger

import "os"

// removed cannot tell a deleted file here.
func removed(*os.File) bool { return false }

// locked cannot tell here.
func locked(string) bool { return false }
