//go:build !unix

package badgerutil

import "io/fs"

// allocated is the file's size where the space it occupies is not known.
func allocated(info fs.FileInfo) int64 { return info.Size() }
