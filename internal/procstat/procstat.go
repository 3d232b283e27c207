// Package procstat reads a process's memory figures from Linux's
// /proc/<pid>/status, for the load generator and the tests that bound the
// server's RSS.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Status returns the kB fields of /proc/<pid>/status (VmHWM, VmRSS,
// RssAnon, RssFile, ...), in KiB. It fails where the file is missing or
// has no VmHWM.
func Status(pid int) (map[string]int64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for line := range strings.Lines(string(raw)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				m[name] = v
			}
		}
	}
	if _, ok := m["VmHWM"]; !ok {
		return nil, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
	}
	return m, nil
}
