package respond

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accessledger/accessledger/internal/ledgertest"
	"github.com/accessledger/accessledger/ledger"
)

// TestFollowRetriesAFailedRead: a read of the log that fails does not stop
// the responders; they read again from where they were, every alert is
// delivered exactly once, and the retries are counted.
func TestFollowRetriesAFailedRead(t *testing.T) {
	defer func(r ledger.Retry) { followRetry = r }(followRetry)
	followRetry = ledger.Retry{Min: time.Millisecond, Max: 4 * time.Millisecond}

	l := newTestLedger(t)
	fl := &ledgertest.FlakyLog{Ledger: l, FailAt: 2}
	fl.Failures.Store(3)
	f := newFakeSender()
	s, _ := runService(t, Config{Log: fl, Dir: t.TempDir(), Delivery: fastDelivery(),
		Responders: []ResponderConfig{{Name: "hook", Type: TypeWebhook}}, Senders: map[string]Sender{"hook": f}})
	for i := range 4 {
		appendAlerts(t, l, testAlert("r1", "high", "203.0.113.9", i))
	}
	waitFor(t, "every alert delivered", func() bool { return len(f.delivered()) >= 4 })
	time.Sleep(50 * time.Millisecond) // a duplicate would arrive by now
	seen := map[string]bool{}
	for _, m := range f.delivered() {
		if seen[m.ID] {
			t.Errorf("message %s delivered twice", m.ID)
		}
		seen[m.ID] = true
	}
	if len(seen) != 4 {
		t.Errorf("%d alerts delivered, want 4", len(seen))
	}
	if !s.Status().Running {
		t.Errorf("Status().Running = false after a failed read; want the service running")
	}
	if v := testutil.ToFloat64(s.metrics.followErrors); v != 3 {
		t.Errorf("accessledger_respond_follow_errors_total = %v, want 3", v)
	}
}
