// Package evidence writes and verifies evidence bundles: one
// self-contained file holding log entries, each with a C2SP tlog-proof
// (c2sp.org/tlog-proof@v1) against one signed checkpoint (with whatever
// witness cosignatures it carries), and the keys to check them. A bundle
// is checked offline, with nothing but the log's verifier key, and the
// witnesses' keys to authenticate its cosignatures (VerifyWith): the
// witness keys a bundle lists are its maker's say-so.
//
// A bundle is one JSON object, written one member (and one entry) per
// line, in exactly this form (Verify accepts no other encoding):
//
//	{"format":"accessledger-evidence/v1",
//	"origin":"<log origin>",
//	"verifier_key":"<log verifier key>",
//	"witness_keys":["<cosignature/v1 verifier key>",...],
//	"checkpoint":"<signed checkpoint note>",
//	"query":"<the query that selected the entries>",
//	"indexed_size":<how far the index reached>,
//	"created":"<RFC 3339 UTC>",
//	"entries":[
//	{"index":<n>,"leaf_hash":"<base64>","entry":<the entry, verbatim JSON>,"tlog_proof":"<C2SP tlog-proof>"},
//	...
//	],
//	"count":<number of entries>,
//	"sha256":"<hex SHA-256 of every byte before this line>"}
//
// An entry that is not compact JSON is carried as "entry_base64" instead
// of "entry". Each tlog_proof embeds the same checkpoint, so that every
// entry's proof can be checked alone by any tlog-proof verifier.
//
// What is proven: the checkpoint is signed by the log's key (and each
// listed witness cosigned it); each entry, hashed as an RFC 6962 leaf, is
// at its index in the tree that checkpoint commits to. What is not: that
// the entries are all the log holds that match the query. The query,
// indexed_size and created members describe how the bundle was made and
// are not signed; the closing digest only detects corruption of the file.
package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// Format names the bundle format; it is the bundle's first member.
const Format = "accessledger-evidence/v1"

// Header is what a bundle says before its entries.
type Header struct {
	Origin      string
	VerifierKey string
	// WitnessKeys are the cosignature/v1 verifier keys of the witnesses
	// whose cosignatures the checkpoint carries.
	WitnessKeys []string
	// Checkpoint is the signed checkpoint note every entry is proved
	// against.
	Checkpoint  []byte
	Query       string
	IndexedSize uint64
	Created     time.Time
}

// Writer writes a bundle. It is not safe for concurrent use.
type Writer struct {
	w     io.Writer
	h     hash.Hash
	cp    []byte
	count uint64
	last  uint64 // the index of the last entry added
	err   error
	buf   []byte
}

// NewWriter writes the bundle's header to w and returns a Writer for its
// entries. Close must be called to finish the bundle.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	bw := &Writer{w: w, h: sha256.New(), cp: h.Checkpoint}
	bw.write(headerLines(h))
	return bw, bw.err
}

func headerLines(h Header) []byte {
	b := []byte(`{"format":` + quote(Format) + ",\n")
	b = append(b, `"origin":`+quote(h.Origin)+",\n"...)
	b = append(b, `"verifier_key":`+quote(h.VerifierKey)+",\n"...)
	b = append(b, `"witness_keys":[`...)
	for i, k := range h.WitnessKeys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, quote(k)...)
	}
	b = append(b, "],\n"...)
	b = append(b, `"checkpoint":`+quote(string(h.Checkpoint))+",\n"...)
	b = append(b, `"query":`+quote(h.Query)+",\n"...)
	b = append(b, `"indexed_size":`+strconv.FormatUint(h.IndexedSize, 10)+",\n"...)
	b = append(b, `"created":`+quote(h.Created.UTC().Format(time.RFC3339))+",\n"...)
	return append(b, "\"entries\":[\n"...)
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.h.Write(b)
	_, w.err = w.w.Write(b)
}

// Add writes one entry with its inclusion proof (RFC 6962, against the
// header's checkpoint). Entries go in increasing index order, each once.
func (w *Writer) Add(index uint64, entry []byte, proof [][]byte) error {
	if w.count > 0 && index <= w.last {
		// Verify refuses it: one encoding for given contents.
		return fmt.Errorf("evidence: entry %d after %d: entries go in increasing index order, each once", index, w.last)
	}
	w.last = index
	if w.count > 0 {
		w.write([]byte(",\n"))
	}
	w.buf = appendEntry(w.buf[:0], index, entry, FormatProof(index, proof, w.cp))
	w.write(w.buf)
	w.count++
	return w.err
}

// appendEntry appends the one encoding of an entry line (without its
// separator).
func appendEntry(b []byte, index uint64, entry, proof []byte) []byte {
	leaf := leafHash(entry)
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, index, 10)
	b = append(b, `,"leaf_hash":"`...)
	b = base64.StdEncoding.AppendEncode(b, leaf[:])
	if isCompactJSON(entry) {
		b = append(b, `","entry":`...)
		b = append(b, entry...)
	} else {
		b = append(b, `","entry_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, entry)
		b = append(b, '"')
	}
	b = append(b, `,"tlog_proof":`...)
	b = appendQuoted(b, string(proof))
	return append(b, '}')
}

// Close finishes the bundle: the entry count and the digest.
func (w *Writer) Close() error {
	if w.count > 0 {
		w.write([]byte("\n"))
	}
	w.write([]byte("],\n\"count\":" + strconv.FormatUint(w.count, 10) + ",\n"))
	if w.err != nil {
		return w.err
	}
	_, w.err = io.WriteString(w.w, `"sha256":"`+hex.EncodeToString(w.h.Sum(nil))+"\"}\n")
	return w.err
}

// leafHash is the RFC 6962 leaf hash, SHA-256(0x00 || entry).
func leafHash(entry []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(entry)
	return [32]byte(h.Sum(nil))
}

// isCompactJSON reports whether b is valid JSON without insignificant
// whitespace, so that it can be embedded verbatim.
func isCompactJSON(b []byte) bool {
	if !json.Valid(b) {
		return false
	}
	var c bytes.Buffer
	if json.Compact(&c, b) != nil {
		return false
	}
	return bytes.Equal(c.Bytes(), b)
}

func quote(s string) string { return string(appendQuoted(nil, s)) }

// appendQuoted appends s as a JSON string, escaping exactly the quote,
// the backslash and control characters (as \n, \r, \t or \u00XX) and
// replacing invalid UTF-8, so that a string has one encoding.
func appendQuoted(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

// unquote decodes a JSON string that must be in the one encoding quote
// writes.
func unquote(b []byte) (string, error) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	if quote(s) != string(b) {
		return "", errors.New("not in its canonical encoding")
	}
	return s, nil
}

// Cosigned returns signedNote keeping only the log's signature and the
// cosignatures that verify with one of witnessKeys (cosignature/v1
// verifier keys), and the keys of those cosignatures: what a bundle's
// header needs, since Verify refuses signatures by keys the bundle does
// not list. It fails if the log's signature does not verify.
func Cosigned(signedNote []byte, logVKey string, witnessKeys []string) ([]byte, []string, error) {
	logV, err := note.NewVerifier(logVKey)
	if err != nil {
		return nil, nil, fmt.Errorf("log verifier key: %w", err)
	}
	vs := []note.Verifier{logV}
	keyOf := map[uint32]string{}
	for _, k := range witnessKeys {
		v, err := witnessVerifier(k)
		if err != nil {
			return nil, nil, fmt.Errorf("witness key %q: %w", k, err)
		}
		vs = append(vs, v)
		keyOf[v.KeyHash()] = k
	}
	n, err := note.Open(signedNote, note.VerifierList(vs...))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	var keys []string
	for _, s := range n.Sigs {
		if k, ok := keyOf[s.Hash]; ok && !(s.Name == logV.Name() && s.Hash == logV.KeyHash()) {
			keys = append(keys, k)
		}
	}
	out, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs})
	if err != nil {
		return nil, nil, err
	}
	return out, keys, nil
}
