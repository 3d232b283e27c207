// Command accessledger runs and administers an accessledger log.
//
//	accessledger serve [flags]     run the service (embedded defaults: ./data, 127.0.0.1:8080)
//	accessledger keygen [flags]    write a checkpoint signing key and print its verifier key
//	accessledger apikey add|list|revoke|rotate   manage API keys
//	accessledger rules lint|test|run   check, test and replay Sigma detection rules
//	accessledger simulate [flags]  generate realistic traffic with labelled attacks
//	accessledger witness [flags]   run a C2SP tlog-witness (witness keygen: write its key)
//	accessledger audit [flags]     verify a log without trusting its server
//	accessledger query [flags]     search the log (table, json, ndjson, csv, ocsf)
//	accessledger export [flags]    write an evidence bundle of the events a query matches
//	accessledger verify FILE       check an evidence bundle offline (--policy: against trusted witnesses)
//	accessledger submit FILE...    append existing logs (JSONL, nginx/Apache, sshd), optionally following them
//	accessledger alerts list|watch|ack|resolve|incident   work the alert feed
//	accessledger version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: accessledger <command> [flags]

commands:
  serve     run the log service (defaults: --data ./data --listen 127.0.0.1:8080)
  keygen    write an Ed25519 checkpoint signing key (and <out>.vkey, its name) and print its verifier key
  apikey    add, list, revoke or rotate API keys: apikey add --name NAME --role submitter[,auditor,...] [--expires 90d]
  rules     lint, test or replay Sigma detection rules: rules lint|test DIR, rules run DIR --events FILE
  simulate  generate realistic synthetic traffic with labelled attacks (NDJSON, or to a server)
  witness   run a C2SP tlog-witness for the logs of a tlog-policy file; witness keygen writes its key
  audit     verify a log from its checkpoint, tiles and entry bundles, without trusting its server
  query     search the log's events: query --actor alice --since 24h [--format table|json|ndjson|csv|ocsf]
  export    write an evidence bundle (entries with C2SP tlog-proofs) of a query's events: export [filters] -o FILE
  verify    check an evidence bundle offline: verify FILE --vkey KEY [--policy FILE]
  submit    append existing logs as events (JSONL, nginx/Apache combined, sshd): submit [--follow --state FILE] FILE...
  alerts    work the alert feed: alerts list|watch|ack ID|resolve ID|incident ID [--verify --vkey KEY]
  version   print the version (also --version)

Run "accessledger <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], processEnvironment(), os.Stdout, os.Stderr))
}

func run(args []string, env environment, stdout, stderr io.Writer) int {
	getenv := env.get
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve", "simulate", "witness", "audit", "query", "export", "submit", "alerts":
		// These stop on the first SIGINT or SIGTERM, saving what they
		// must (offsets, a final checkpoint). A second signal, while
		// they do, ends the process at once.
		go func() {
			<-ctx.Done()
			stop()
		}()
	default:
		// The rest have nothing to save: a signal ends them at once,
		// also while they wait (on a lock, a FIFO, standard input).
		stop()
	}
	var err error
	switch args[0] {
	case "serve":
		var cfg Config
		cfg, err = loadConfig(args[1:], env, stderr)
		if err == nil {
			err = serve(ctx, cfg, stdout, stderr)
			if err != nil && cfg.LogFormat == "json" {
				// stderr carries only JSON records: the reason it
				// stopped too.
				newLogger(cfg, stderr).Error("accessledger serve stopped", "err", err)
				return 1
			}
		}
	case "keygen":
		err = keygen(args[1:], stdout, stderr)
	case "apikey":
		err = apikey(args[1:], getenv, stdout, stderr)
	case "rules":
		err = rulesCmd(args[1:], stdout, stderr)
	case "simulate":
		err = simulate(ctx, args[1:], stdout, stderr)
	case "witness":
		err = witnessCmd(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], getenv, stdout, stderr)
	case "query":
		err = queryCmd(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		err = exportCmd(ctx, args[1:], getenv, stdout, stderr)
	case "verify":
		err = verifyCmd(args[1:], stdout, stderr)
	case "submit":
		err = submitCmd(ctx, args[1:], getenv, stdout, stderr)
	case "alerts":
		err = alertsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "accessledger", version)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "accessledger: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "accessledger %s: %v\n", args[0], err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}
