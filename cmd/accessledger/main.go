// Command accessledger runs and administers an accessledger log.
//
//	accessledger serve [flags]     run the service (embedded defaults: ./data, 127.0.0.1:8080)
//	accessledger keygen [flags]    write a checkpoint signing key and print its verifier key
//	accessledger apikey add|list   manage API keys
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
  apikey    add or list API keys: apikey add --name NAME --role submitter[,auditor,...]
  version   print the version (also --version)

Run "accessledger <command> -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		var cfg Config
		cfg, err = loadConfig(args[1:], getenv, stderr)
		if err == nil {
			err = serve(ctx, cfg, stdout, stderr)
		}
	case "keygen":
		err = keygen(args[1:], stdout, stderr)
	case "apikey":
		err = apikey(args[1:], getenv, stdout, stderr)
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
		return 1
	}
	return 0
}
