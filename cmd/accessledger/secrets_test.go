package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/respond"
)

// TestWarnReadableSecrets: admin.key (the admin secret in plaintext), a
// responder's secret_file, a config file holding secrets and the keys
// file were accepted at mode 0644 without a word, while the TLS key got a
// warning. Each gets one now, naming the file; the same files at 0600,
// and a config file without secrets, get none.
func TestWarnReadableSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("secret\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o600} {
		cfg := defaultConfig()
		cfg.Data = dir
		admin := write(adminKeyFile, mode)
		keys := write(apiKeysFile, mode)
		secret := write("hook.secret", mode)
		cfg.ConfigFile = write("accessledger.yaml", mode)
		cfg.Responders = []respond.ResponderConfig{{Name: "hook", Type: respond.TypeWebhook, SecretFile: secret}}
		cfg.APIKeys = []api.APIKey{{Name: "ops"}}
		var buf bytes.Buffer
		warnReadableSecrets(cfg, newLogger(cfg, &buf))
		for _, path := range []string{admin, keys, secret, cfg.ConfigFile} {
			warned := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "path="+path) && strings.Contains(buf.String(), "chmod 600")
			if warned != (mode != 0o600) {
				t.Errorf("mode %04o: warned about %s = %v, want %v; log:\n%s", mode, path, warned, mode != 0o600, &buf)
			}
		}
		// A config file with no secret in it may be read by anyone.
		cfg.APIKeys, cfg.Responders = nil, nil
		buf.Reset()
		warnReadableSecrets(cfg, newLogger(cfg, &buf))
		if strings.Contains(buf.String(), "path="+cfg.ConfigFile) {
			t.Errorf("mode %04o: warned about a config file without secrets:\n%s", mode, &buf)
		}
	}
}

// TestWarnWritableKeysDir: a directory of the keys file that group or
// others may write, who can remove or replace the file, is warned about,
// naming it; one only its owner may write is not.
func TestWarnWritableKeysDir(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o777, 0o770, 0o755, 0o700} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		cfg := defaultConfig()
		cfg.Data = dir
		var buf bytes.Buffer
		warnReadableSecrets(cfg, newLogger(cfg, &buf))
		warned := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "directory of the keys file") && strings.Contains(buf.String(), "path="+dir)
		if want := mode&0o022 != 0; warned != want {
			t.Errorf("directory mode %04o: warned = %v, want %v; log:\n%s", mode, warned, want, &buf)
		}
	}
}

// TestWarnSymlinkedKeysFile: a keys file that is a symbolic link, which
// key administration refuses to change, is warned about at start, naming
// the file it points to.
func TestWarnSymlinkedKeysFile(t *testing.T) {
	dir := t.TempDir()
	managed := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(managed, []byte("keys: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Data = dir
	var buf bytes.Buffer
	warnReadableSecrets(cfg, newLogger(cfg, &buf))
	if strings.Contains(buf.String(), "symbolic link") {
		t.Errorf("warned about a keys file that is no link:\n%s", &buf)
	}
	if err := os.Symlink(managed, cfg.keysPath()); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	warnReadableSecrets(cfg, newLogger(cfg, &buf))
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "symbolic link") || !strings.Contains(buf.String(), "target="+managed) {
		t.Errorf("a keys file linked to %s: log\n%s\nwant a warning naming it", managed, &buf)
	}
}
