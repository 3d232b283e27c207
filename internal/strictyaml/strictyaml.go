// Package strictyaml decodes the YAML files an operator writes by hand
// (the server's config, the API keys file) strictly: an unknown key is an
// error, and so is a second document, which a decoder would otherwise
// ignore, with every setting in it.
package strictyaml

import (
	"bytes"
	"errors"
	"io"

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
