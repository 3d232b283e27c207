package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/accessledger/accessledger/respond"
)

// warnIfReadable logs a warning naming the file at path, which holds
// what, if its mode grants any of the permission bits in mask, and how
// to fix it. It is silent about a file it cannot stat: reading the file
// reports that.
func warnIfReadable(log *slog.Logger, what, path string, mask os.FileMode, fix string) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&mask != 0 {
		log.Warn(what+" is readable by others: "+fix+" it", "path", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}

// warnReadableSecrets warns, as for the TLS key, about the files holding
// secrets that others than their owner may read: <data>/admin.key (the
// generated admin secret), the responders' secret_file files, and a
// config file with secrets in it; and about the keys file (hashes only,
// but which keys exist and what they may do is nobody else's business),
// if others may read it or its directory is writable by others, who can
// then remove or replace it, or if it is a symbolic link, which key
// administration refuses to change. (The signing key is refused instead:
// ledger.LoadKeyFile; so is a keys file others may write:
// api.KeyFile.Check.)
func warnReadableSecrets(cfg Config, log *slog.Logger) {
	secret := func(what, path string) { warnIfReadable(log, what, path, 0o077, "chmod 600") }
	secret("the admin key", filepath.Join(cfg.Data, adminKeyFile))
	secret("the keys file", cfg.keysPath())
	dir := filepath.Dir(cfg.keysPath())
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o022 != 0 {
		log.Warn("the directory of the keys file is writable by others, who can remove or replace the keys file: chmod go-w it",
			"path", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	if dest, err := os.Readlink(cfg.keysPath()); err == nil {
		log.Warn("the keys file is a symbolic link: it is read through it, but accessledger apikey and the admin API refuse to change it; to change keys with them, name the file it points to in api_keys_file",
			"path", cfg.keysPath(), "target", dest)
	}
	for _, rc := range cfg.Responders {
		if rc.SecretFile != "" {
			secret(fmt.Sprintf("the secret_file of responder %q", rc.Name), rc.SecretFile)
		}
	}
	if cfg.ConfigFile != "" && cfg.holdsSecrets() {
		secret("the config file, which holds secrets (api_keys, responders' secrets, routing keys or Slack URLs),", cfg.ConfigFile)
	}
}

// holdsSecrets reports whether the configuration holds secrets of its
// own: API keys (their hashes), webhook secrets, PagerDuty routing keys
// or Slack webhook URLs (which are credentials).
func (c Config) holdsSecrets() bool {
	if len(c.APIKeys) > 0 {
		return true
	}
	for _, rc := range c.Responders {
		if rc.Secret != "" || len(rc.PreviousSecrets) > 0 || rc.RoutingKey != "" || (rc.Type == respond.TypeSlack && rc.URL != "") {
			return true
		}
	}
	return false
}
