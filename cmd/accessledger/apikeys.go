package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/accessledger/accessledger/api"
	"github.com/accessledger/accessledger/event"
	"github.com/accessledger/accessledger/ledger"
)

// Files in the data directory holding API keys.
const (
	apiKeysFile  = "api_keys.yaml" // stored (hashed) keys, mode 0600
	adminKeyFile = "admin.key"     // the generated admin secret, mode 0600
)

func (c Config) keysPath() string {
	if c.APIKeysFile != "" {
		return c.APIKeysFile
	}
	return filepath.Join(c.Data, apiKeysFile)
}

// configKeysFrom says where the configured keys come from, for errors.
func (c Config) configKeysFrom() string {
	if c.ConfigFile != "" {
		return "the config file " + c.ConfigFile
	}
	return "the configuration"
}

// readKeys gathers the configured keys and those in the keys file, and
// checks that they make a keyring. It refuses a keys file that others
// than this process's user and root can change (api.KeyFile.Check). It
// writes nothing.
func readKeys(cfg Config) ([]api.APIKey, error) {
	kf := api.NewKeyFile(cfg.keysPath())
	if err := kf.Check(); err != nil {
		return nil, err
	}
	fileKeys, err := kf.Read()
	if err != nil {
		return nil, err
	}
	if _, err := api.NewKeyringOf(cfg.APIKeys, cfg.configKeysFrom(), fileKeys, cfg.keysPath()); err != nil {
		return nil, err
	}
	return append(append([]api.APIKey(nil), cfg.APIKeys...), fileKeys...), nil
}

// checkKeysHeld refuses keys (from readKeys) that are none while the keys
// file exists: it was emptied (a key cannot be revoked down to none), and
// a new admin key would replace every key without a word. Only a first
// start, with no file, generates one. It writes nothing, so that serve
// calls it before it creates anything.
func checkKeysHeld(cfg Config, keys []api.APIKey) error {
	if len(keys) > 0 {
		return nil
	}
	path := cfg.keysPath()
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s holds no API key: was it emptied? Refusing to generate a new admin key in place of the keys it held. "+
			"Restore it from a backup, or remove it to have a new admin key generated into %s", path, filepath.Join(cfg.Data, adminKeyFile))
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// loadKeyring builds the keyring of keys (from readKeys, checked by
// checkKeysHeld). If there are none at all, it generates an admin key,
// writes its secret to <data>/admin.key (0600) and records its hash, so
// that a fresh start is usable and still secure; it returns that key too
// (nil if it made none), whose creation the log records by accessledger
// (api.Config.GeneratedKey).
func loadKeyring(cfg Config, keys []api.APIKey, log *slog.Logger) (*api.Keyring, *api.APIKey, error) {
	if err := checkKeysHeld(cfg, keys); err != nil {
		return nil, nil, err
	}
	var generated *api.APIKey
	if len(keys) == 0 {
		token, key, err := api.NewAPIKey("admin", api.RoleAdmin)
		if err != nil {
			return nil, nil, err
		}
		key.CreatedAt, key.CreatedBy = time.Now().UTC(), event.AdminByServer
		adminPath := filepath.Join(cfg.Data, adminKeyFile)
		if err := ledger.WriteFileAtomic(adminPath, []byte(token+"\n"), 0o600); err != nil {
			return nil, nil, fmt.Errorf("writing admin key: %w", err)
		}
		if err := api.NewKeyFile(cfg.keysPath()).Write([]api.APIKey{key}); err != nil {
			return nil, nil, err
		}
		log.Info("no API keys configured: generated an admin key", "secret_in", adminPath)
		keys = append(keys, key)
		generated = &key
	}
	kr, err := api.NewKeyring(keys)
	return kr, generated, err
}

const apikeyUsage = `usage: accessledger apikey add --name NAME --role ROLE[,ROLE] [--expires WHEN] [--rate-per-second N [--rate-burst N]]
       accessledger apikey list
       accessledger apikey revoke --name NAME
       accessledger apikey rotate --name NAME [--grace DURATION] [--expires WHEN]
each with [--config FILE | --data DIR | --file FILE]

add creates a key with the given roles (submitter, auditor, responder,
bouncer, admin), prints its secret once and stores only its SHA-256 in the
keys file (<data>/api_keys.yaml unless --file or api_keys_file says
otherwise). WHEN is an RFC 3339 time or a duration such as 720h or 90d.
list shows each key's name, roles, status (active, expired, revoked),
creation and expiry; never a secret.
revoke makes a key unusable; it stays listed, and its name is not reused.
With --config, add also refuses a name the config file's api_keys use (the
server would refuse a keys file repeating one).
rotate gives a key a new secret (printed once), keeping its name and roles;
with --grace the old secret stays valid that long (a later rotation ends it).

Run it as the server's user or as root: the keys file keeps its owner and
group, so that the server can still read it; another user is refused.

A running server sees every change within a second (it checks the keys
file every second; SIGHUP reloads at once) and records it in the log as a
leaf of kind admin, by "cli". Through the server's admin API (POST
/v1/admin/keys...) a change takes effect at once and is recorded by the
acting admin key.

Run "accessledger apikey add -h" for the flags.
`

// apikey manages the keys file: "apikey add", "list", "revoke" and
// "rotate". It shares every check with the admin API (api.KeyFile).
func apikey(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		fmt.Fprint(stdout, apikeyUsage)
		return nil
	}
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "add", "list", "revoke", "rotate":
	default:
		return errors.New(`want "apikey add --name NAME --role ROLE[,ROLE]", "apikey list", "apikey revoke --name NAME" or "apikey rotate --name NAME"; "accessledger apikey -h" explains`)
	}
	fs := flag.NewFlagSet("apikey "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("ACCESSLEDGER_CONFIG"), "the server's YAML config, for its data directory and keys file (env ACCESSLEDGER_CONFIG)")
	data := fs.String("data", "", "data directory (env ACCESSLEDGER_DATA; default ./data)")
	file := fs.String("file", "", "keys file (env ACCESSLEDGER_API_KEYS_FILE; default <data>/api_keys.yaml)")
	var name, roles, expires, grace *string
	var perSecond *float64
	var burst *int
	if sub != "list" {
		name = fs.String("name", "", "key name: 1 to 64 characters [A-Za-z0-9._@-]")
	}
	switch sub {
	case "add":
		roles = fs.String("role", "", "comma-separated roles: submitter, auditor, responder, bouncer, admin")
		expires = fs.String("expires", "", "when the key expires: an RFC 3339 time, or a duration such as 720h or 90d (default never)")
		perSecond = fs.Float64("rate-per-second", -1, "this key's rate limit, in requests per second; 0 for none (default: the server's rate_limit)")
		burst = fs.Int("rate-burst", 0, "this key's burst: requests it may make at once (default: the rate, rounded up)")
	case "rotate":
		grace = fs.String("grace", "0s", "how long the old secret stays valid, such as 1h or 7d (at most 30d)")
		expires = fs.String("expires", "", "a new expiry: an RFC 3339 time, or a duration such as 720h or 90d (default: keep the key's)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// The same precedence as serve: defaults, config file, environment,
	// flags, so the command finds the keys file the server reads.
	cfg := defaultConfig()
	if err := readConfigFile(*configPath, &cfg); err != nil {
		return err
	}
	cfg.Data = firstNonEmpty(*data, getenv("ACCESSLEDGER_DATA"), cfg.Data)
	cfg.APIKeysFile = firstNonEmpty(*file, getenv("ACCESSLEDGER_API_KEYS_FILE"), cfg.APIKeysFile)
	kf := api.NewKeyFile(cfg.keysPath())
	now := time.Now()
	// The server makes its data directory: one missing is a mistyped
	// --data, whose new keys file no server would read.
	if fi, err := os.Stat(cfg.Data); sub != "list" && *file == "" && (err != nil || !fi.IsDir()) {
		return fmt.Errorf("data directory %s does not exist: is --data the server's? (--file names a keys file elsewhere)", cfg.Data)
	}

	switch sub {
	case "list":
		keys, err := kf.Read()
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			// Say where it looked: an empty list from the wrong
			// directory looks like a server without keys.
			if _, err := os.Stat(cfg.keysPath()); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no keys file at %s: is --data (or --file) the server's?", cfg.keysPath())
			}
			fmt.Fprintf(stderr, "no keys in %s\n", cfg.keysPath())
			return nil
		}
		for i := range keys {
			printKey(stdout, &keys[i], now)
		}
		return nil

	case "add":
		if *name == "" || *roles == "" {
			return errors.New("--name and --role are required")
		}
		spec := api.KeySpec{Name: *name}
		for _, r := range strings.Split(*roles, ",") {
			role, err := api.ParseRole(strings.TrimSpace(r))
			if err != nil {
				return err
			}
			spec.Roles = append(spec.Roles, role)
		}
		var err error
		if spec.ExpiresAt, err = api.ParseExpiry(*expires, now); err != nil {
			return err
		}
		if *perSecond >= 0 {
			spec.RateLimit = &api.RateLimit{PerSecond: *perSecond, Burst: *burst}
		} else if *burst != 0 {
			return errors.New("--rate-burst needs --rate-per-second")
		}
		token, _, err := kf.Create(spec, event.AdminByCLI, now, cfg.APIKeys)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "key %q added to %s; this secret is shown only once. A running server loads it within a second (SIGHUP: at once).\n", *name, kf.Path())
		if cfg.ConfigFile == "" {
			// The server refuses a keys file that repeats a name of
			// its config file's api_keys; only --config lets us check.
			fmt.Fprintln(stderr, "Without --config (or ACCESSLEDGER_CONFIG), the names of the server's config file (api_keys) were not checked: if it has a key of this name, the server refuses the keys file.")
		}
		return nil

	case "revoke":
		if *name == "" {
			return errors.New("--name is required")
		}
		if _, err := kf.Revoke(*name, event.AdminByCLI, now, cfg.APIKeys); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "key %q revoked in %s. A running server refuses it within a second (SIGHUP: at once).\n", *name, kf.Path())
		return nil

	default: // rotate
		if *name == "" {
			return errors.New("--name is required")
		}
		var spec api.RotateSpec
		var err error
		if spec.Grace, err = api.ParseDuration(*grace); err != nil {
			return fmt.Errorf("--grace %q: want a duration such as 1h or 7d", *grace)
		}
		if spec.ExpiresAt, err = api.ParseExpiry(*expires, now); err != nil {
			return err
		}
		token, key, err := kf.Rotate(*name, spec, event.AdminByCLI, now, cfg.APIKeys)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		old := "the old secret stopped being valid"
		if key.PreviousSHA256 != "" {
			old = "the old secret stays valid until " + key.PreviousValidUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(stderr, "key %q rotated in %s; this secret is shown only once, and %s. A running server loads it within a second (SIGHUP: at once).\n", *name, kf.Path(), old)
		return nil
	}
}

// printKey prints one line of "apikey list": name, roles, status,
// creation and expiry, tab-separated.
func printKey(w io.Writer, k *api.APIKey, now time.Time) {
	created, expires := "-", "never"
	if !k.CreatedAt.IsZero() {
		created = k.CreatedAt.UTC().Format(time.RFC3339) + " by " + cmp.Or(k.CreatedBy, "-")
	}
	if !k.ExpiresAt.IsZero() {
		expires = k.ExpiresAt.UTC().Format(time.RFC3339)
	}
	status := api.KeyStatus(k, now)
	if k.Revoked() {
		status += " " + k.RevokedAt.UTC().Format(time.RFC3339) + " by " + cmp.Or(k.RevokedBy, "-")
	}
	fmt.Fprintf(w, "%s\t%v\t%s\tcreated %s\texpires %s\n", k.Name, k.Roles, status, created, expires)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
