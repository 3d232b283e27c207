package main

import (
	"log/slog"
	"os"
	"time"
)

// shutdownGrace is how long, beyond shutdown_timeout, the steps after the
// HTTP drain (the followers' last saves, closing the storage) may take
// before the process exits without them.
const shutdownGrace = 5 * time.Second

// shutdownWatchdog bounds a shutdown that has begun: unless the returned
// timer is stopped first, the process exits with status 1 after timeout
// and shutdownGrace, logging why and what that leaves (safe, a sentence
// for the operator). Storage that cannot be written (a full disk, a
// directory removed under the server) keeps Badger retrying for ever
// inside its Close; a SIGTERM must still end the process.
func shutdownWatchdog(log *slog.Logger, timeout time.Duration, safe string) *time.Timer {
	return time.AfterFunc(timeout+shutdownGrace, func() {
		log.Error("shutdown did not finish within shutdown_timeout and its grace; exiting without it",
			"shutdown_timeout", timeout, "grace", shutdownGrace, "state", safe)
		os.Exit(1)
	})
}
