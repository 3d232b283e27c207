package procstat

import (
	"os"
	"testing"
)

func TestStatusOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	m, err := Status(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m["VmHWM"] <= 0 || m["VmRSS"] <= 0 || m["VmHWM"] < m["VmRSS"] {
		t.Errorf("VmHWM %d KiB, VmRSS %d KiB: want both positive, the peak at least the current", m["VmHWM"], m["VmRSS"])
	}
	if _, err := Status(-1); err == nil {
		t.Error("Status(-1) succeeded, want an error")
	}
}
