package main

import (
	"bufio"
	"bytes"
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
	switch *out {
	case "":
		return errors.New("-o FILE is required: where to write the bundle")
	case "-":
		// A bundle is checked before it replaces the file; what went
		// to standard output could not be taken back.
		return errors.New("-o -: export writes a file, which it checks before it replaces the one there; give a file name (for the entries on standard output, use query --format ndjson)")
	}
	dest, through, err := outputTarget(*out)
	if err != nil {
		return err
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
	tmpDir := filepath.Dir(dest)
	if through {
		tmpDir = "" // the system's: dest is no directory entry of ours
	}
	tmp, err := os.CreateTemp(tmpDir, "."+filepath.Base(dest)+".*")
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
		if bytes.HasPrefix(line, []byte(`{"index":`)) {
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
	if through {
		if err := copyInto(dest, tmp.Name()); err != nil {
			return err
		}
	} else if err := os.Rename(tmp.Name(), dest); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// outputTarget resolves where -o writes: through a symbolic link to its
// target (renaming over the link would replace it), and, for what is not
// a regular file (a FIFO, a device, /dev/stdout), into it rather than by
// renaming a file over it (through). A directory is refused.
func outputTarget(out string) (dest string, through bool, err error) {
	// A link, even to a file not there yet, is written through.
	for range 16 {
		li, err := os.Lstat(out)
		if err != nil || li.Mode()&os.ModeSymlink == 0 {
			break
		}
		target, err := os.Readlink(out)
		if err != nil {
			return "", false, fmt.Errorf("-o %s: %w", out, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(out), target)
		}
		out = target
	}
	fi, err := os.Stat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(filepath.Dir(out)); err != nil {
			return "", false, fmt.Errorf("-o %s: its directory %s does not exist", out, filepath.Dir(out))
		}
		return out, false, nil
	case err != nil:
		return "", false, fmt.Errorf("-o %s: %w", out, err)
	case fi.IsDir():
		return "", false, fmt.Errorf("-o %s is a directory: give a file name", out)
	case !fi.Mode().IsRegular():
		return out, true, nil
	}
	return out, false, nil
}

// copyInto writes the content of file src into dest, which is not a
// regular file.
func copyInto(dest, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return out.Close()
}

// openOutput opens where a command writes (-o out, or stdout when out is
// "" or "-"). A regular file is written beside it and renamed over it by
// commit(nil), so that a command that fails (commit(err)) leaves it as it
// was; what is not a regular file (a FIFO, a device) is written into.
// commit returns the command's error, or the first error of finishing
// the output. Files are created 0600: they hold personal data.
func openOutput(out string, stdout io.Writer) (w io.Writer, commit func(error) error, err error) {
	if out == "" || out == "-" {
		return stdout, func(err error) error { return err }, nil
	}
	dest, through, err := outputTarget(out)
	if err != nil {
		return nil, nil, err
	}
	if through {
		f, err := os.OpenFile(dest, os.O_WRONLY, 0)
		if err != nil {
			return nil, nil, err
		}
		return f, func(err error) error {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("writing %s: %w", out, cerr)
			}
			return err
		}, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".*")
	if err != nil {
		return nil, nil, err
	}
	return tmp, func(err error) error {
		if err == nil {
			err = tmp.Close()
		} else {
			tmp.Close()
		}
		if err == nil {
			err = os.Rename(tmp.Name(), dest)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
		return err
	}, nil
}
