// Package strictyaml decodes the YAML files an operator writes by hand
// (the server's config, the API keys file) strictly: an unknown key is an
// error, and so is a second document, which a decoder would otherwise
// ignore, with every setting in it.
package strictyaml

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode decodes the one YAML document of raw into v, refusing unknown
// keys and further documents. An empty raw leaves v as it is.
func Decode(raw []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !empty(&next) {
			return errors.New("a second YAML document (after ---): its settings would be ignored; keep them in one document")
		}
	}
}

// empty reports whether a document holds nothing (a trailing ---).
func empty(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	return n.Kind == 0 || n.Kind == yaml.DocumentNode && len(n.Content) == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// lineOf finds the line number yaml.v3 puts at the start of a message.
var lineOf = regexp.MustCompile(`^(?:yaml: )?line (\d+):`)

// quoted finds what yaml.v3 quotes of the document in a message.
var quoted = regexp.MustCompile("`[^`]*`|'[^']*'|\"[^\"]*\"")

// Redact returns err, an error of Decode, saying where the document is
// wrong (its line numbers, and what kind of error) but not what it holds:
// yaml.v3 quotes values and names unknown keys, and a file given by
// mistake, or by someone else, may be another's secrets.
func Redact(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := quoted.ReplaceAllString(err.Error(), "…")
		if !lineOf.MatchString(msg) {
			// A value's own parser (a time), without a line.
			msg = "yaml: a value is not valid (" + msg + ")"
		}
		return errors.New(msg)
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		where := "somewhere"
		if m := lineOf.FindStringSubmatch(e); m != nil {
			where = "line " + m[1]
		}
		what := "a value of the wrong type"
		switch {
		case strings.Contains(e, " not found in type "):
			what = "an unknown field"
		case strings.Contains(e, " already set in type "), strings.Contains(e, " already defined at line "):
			what = "a field given twice"
		}
		msgs = append(msgs, where+": "+what)
	}
	return errors.New("yaml: " + strings.Join(msgs, "; "))
}
