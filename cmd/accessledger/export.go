package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	evbundle "github.com/accessledger/accessledger/client/evidence"
)

const exportUsage = `usage: accessledger export [flags] [filters] -o FILE

Writes an evidence bundle (GET /v1/evidence) to FILE: the events matching
the filters, each with a C2SP tlog-proof against one signed checkpoint
(with the witnesses' cosignatures it has), and the log's verifier key. An
auditor checks it offline with "accessledger verify FILE --vkey KEY", or
each entry's tlog-proof with any tlog-proof verifier. The file is written
whole or not at all.

example:
  accessledger export --api-key-file auditor.key --actor alice --since 720h -o alice.evidence.json --vkey data/log.vkey

flags:
`

// exportCmd runs "accessledger export".
func exportCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), exportUsage); fs.PrintDefaults() }
	var sf serverFlags
	sf.register(fs, getenv)
	var ff filterFlags
	ff.register(fs)
	out := fs.String("o", "", "the bundle file to write (required)")
	limit := fs.Int("limit", 0, "refuse a query matching more events than this (server default 10000, at most 100000)")
	vkey := fs.String("vkey", "", "verify the bundle with this log verifier key (or file holding it) once written")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q", pos[0])
	}
	if *out == "" {
		return errors.New("-o FILE is required: where to write the bundle")
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	q, err := ff.query(time.Now())
	if err != nil {
		return err
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	resp, err := c.get(ctx, "/v1/evidence", q, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Write beside the target, then rename: a cut download never leaves
	// a file that looks like a bundle.
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	p := newProgress(stderr, "entries", -1)
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	bw := bufio.NewWriterSize(tmp, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if _, werr := bw.Write(line); werr != nil {
			tmp.Close()
			return werr
		}
		if len(line) > 1 && line[0] == '{' && line[1] == '"' && string(line[:9]) == `{"index":` {
			p.add(1)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			tmp.Close()
			return fmt.Errorf("the download was cut: %w", err)
		}
	}
	p.done()
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if *vkey != "" {
		key, err := readVKeyArg(*vkey)
		if err != nil {
			return err
		}
		f, err := os.Open(tmp.Name())
		if err != nil {
			return err
		}
		sum, err := evbundle.Verify(bufio.NewReader(f), key)
		f.Close()
		if err != nil {
			return fmt.Errorf("the bundle the server sent does not verify (not written): %w", err)
		}
		defer fmt.Fprintf(stdout, "verified: %s\n", summaryLine(sum))
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}
