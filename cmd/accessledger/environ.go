package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/accessledger/accessledger/respond"
)

// environment is the environment the commands read: the process's
// (processEnvironment), or one a test makes.
type environment map[string]string

// processEnvironment returns the process's environment.
func processEnvironment() environment {
	env := environment{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// get returns the value of the variable k; "" if it is not set.
func (e environment) get(k string) string { return e[k] }

// lookup returns the value of the variable k and whether it is set, so
// that a variable set to "" can turn a setting off.
func (e environment) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

// envPrefix begins the names of accessledger's environment variables.
const envPrefix = "ACCESSLEDGER_"

// otherEnv are the variables of accessledger other than serve's
// settings: those of the other commands (which a shell may set for them
// all), those serve sets for exec responders, and those of the tests and
// build scripts. serve ignores them without a warning, and any variable
// beginning with otherEnvPrefix.
var otherEnv = []string{
	"ACCESSLEDGER_CONFIG",
	"ACCESSLEDGER_API_KEY",       // query, export, submit, alerts, simulate
	"ACCESSLEDGER_URL",           // query, export, submit, alerts
	"ACCESSLEDGER_AUDIT_API_KEY", // audit
	respond.EnvMessageID,
	respond.EnvMessageType,
	"ACCESSLEDGER_UNSAFE_NO_SYNC_FOR_TESTING",
	"ACCESSLEDGER_TOOLS", // scripts/bench-vs-tessera.sh
}

// otherEnvPrefix begins the witness command's variables.
const otherEnvPrefix = witnessEnvPrefix

// unknownEnv returns the names of the ACCESSLEDGER_* variables of env
// that are neither a setting of fields nor in otherEnv, sorted: misspelt
// ones, which would otherwise be ignored without a word.
func unknownEnv(env environment, fields []configField) []string {
	var unknown []string
	for k := range env {
		if !strings.HasPrefix(k, envPrefix) || strings.HasPrefix(k, otherEnvPrefix) || slices.Contains(otherEnv, k) ||
			slices.ContainsFunc(fields, func(f configField) bool { return envName(f.name) == k }) {
			continue
		}
		unknown = append(unknown, k)
	}
	slices.Sort(unknown)
	return unknown
}

// parseBool parses a boolean from the environment: what the config file
// takes (YAML's true/false, yes/no, on/off, y/n, in lower, title or upper
// case), so that a value means the same in both, and what the environment
// took before (strconv.ParseBool's 1/0, t/f), so that no deployment's
// setting stops parsing.
func parseBool(s string) (bool, error) {
	switch s {
	case "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
		return true, nil
	case "no", "No", "NO", "off", "Off", "OFF", "n", "N":
		return false, nil
	}
	if b, err := strconv.ParseBool(s); err == nil {
		return b, nil
	}
	return false, fmt.Errorf("%q is not a boolean: want true or false (or yes/no, on/off, 1/0)", s)
}
