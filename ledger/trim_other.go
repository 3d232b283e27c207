//go:build !linux

package ledger

// trimMappings does nothing where /proc/self/maps and MADV_PAGEOUT are
// not available.
func trimMappings(dir string, logsOnly bool) (int64, error) { return 0, nil }

// fileResident reports nothing resident where /proc/self/statm is not
// available, so the ledger never calls trimMappings there.
func fileResident() (int64, error) { return 0, nil }
