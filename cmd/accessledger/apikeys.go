package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/ledger"
)

// Files in the data directory holding API keys.
const (
	apiKeysFile  = "api_keys.yaml" // stored (hashed) keys, mode 0600
	adminKeyFile = "admin.key"     // the generated admin secret, mode 0600
)

type keysFile struct {
	Keys []api.APIKey `yaml:"keys"`
}

func (c Config) keysPath() string {
	if c.APIKeysFile != "" {
		return c.APIKeysFile
	}
	return filepath.Join(c.Data, apiKeysFile)
}

func readKeysFile(path string) ([]api.APIKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f keysFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return f.Keys, nil
}

func writeKeysFile(path string, keys []api.APIKey) error {
	raw, err := yaml.Marshal(keysFile{Keys: keys})
	if err != nil {
		return err
	}
	if err := ledger.WriteFileAtomic(path, raw, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// readKeys gathers the configured keys and those in the keys file. It
// writes nothing.
func readKeys(cfg Config) ([]api.APIKey, error) {
	keys := append([]api.APIKey(nil), cfg.APIKeys...)
	fileKeys, err := readKeysFile(cfg.keysPath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		keys = append(keys, fileKeys...)
	}
	return keys, nil
}

// loadKeyring builds the keyring of keys (from readKeys). If there are
// none at all, it generates an admin key, writes its secret to
// <data>/admin.key (0600) and records its hash, so that a fresh start is
// usable and still secure.
func loadKeyring(cfg Config, keys []api.APIKey, log *slog.Logger) (*api.Keyring, error) {
	if len(keys) == 0 {
		token, key, err := api.NewAPIKey("admin", api.RoleAdmin)
		if err != nil {
			return nil, err
		}
		adminPath := filepath.Join(cfg.Data, adminKeyFile)
		if err := ledger.WriteFileAtomic(adminPath, []byte(token+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("writing admin key: %w", err)
		}
		if err := writeKeysFile(cfg.keysPath(), []api.APIKey{key}); err != nil {
			return nil, err
		}
		log.Info("no API keys configured: generated an admin key", "secret_in", adminPath)
		keys = append(keys, key)
	}
	return api.NewKeyring(keys)
}

const apikeyUsage = `usage: accessledger apikey add --name NAME --role ROLE[,ROLE] [--config FILE | --data DIR | --file FILE]
       accessledger apikey list [--config FILE | --data DIR | --file FILE]

add creates a key with the given roles (submitter, auditor, responder, admin),
prints its secret once and stores only its SHA-256 in the keys file
(<data>/api_keys.yaml unless --file or api_keys_file says otherwise). Send
SIGHUP to a running server to load it. list shows the keys' names and roles.

Run "accessledger apikey add -h" for the flags.
`

// apikey manages the keys file: "apikey add" and "apikey list".
func apikey(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		fmt.Fprint(stdout, apikeyUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "add" && args[0] != "list") {
		return errors.New(`want "apikey add --name NAME --role ROLE[,ROLE]" or "apikey list"; "accessledger apikey -h" explains`)
	}
	fs := flag.NewFlagSet("apikey "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("ACCESSLEDGER_CONFIG"), "the server's YAML config, for its data directory and keys file (env ACCESSLEDGER_CONFIG)")
	data := fs.String("data", "", "data directory (env ACCESSLEDGER_DATA; default ./data)")
	file := fs.String("file", "", "keys file (env ACCESSLEDGER_API_KEYS_FILE; default <data>/api_keys.yaml)")
	name := fs.String("name", "", "key name (add)")
	roles := fs.String("role", "", "comma-separated roles: submitter, auditor, responder, admin (add)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	// The same precedence as serve: defaults, config file, environment,
	// flags, so the command finds the keys file the server reads.
	cfg := defaultConfig()
	if *configPath != "" {
		if err := readConfigFile(*configPath, &cfg); err != nil {
			return err
		}
	}
	cfg.Data = firstNonEmpty(*data, getenv("ACCESSLEDGER_DATA"), cfg.Data)
	cfg.APIKeysFile = firstNonEmpty(*file, getenv("ACCESSLEDGER_API_KEYS_FILE"), cfg.APIKeysFile)
	path := cfg.keysPath()
	keys, err := readKeysFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if args[0] == "list" {
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s\t%v\n", k.Name, k.Roles)
		}
		return nil
	}
	if *name == "" || *roles == "" {
		return errors.New("--name and --role are required")
	}
	var rs []api.Role
	for _, r := range strings.Split(*roles, ",") {
		role, err := api.ParseRole(strings.TrimSpace(r))
		if err != nil {
			return err
		}
		rs = append(rs, role)
	}
	for _, k := range keys {
		if k.Name == *name {
			return fmt.Errorf("a key named %q already exists", *name)
		}
	}
	token, key, err := api.NewAPIKey(*name, rs...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeKeysFile(path, append(keys, key)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stderr, "key %q added to %s; this secret is shown only once. Send SIGHUP to a running server to load it.\n", *name, path)
	return nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
