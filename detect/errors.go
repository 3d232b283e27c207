package detect

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Errors callers branch on. Every *Error wraps one of them.
var (
	// ErrInvalid means a rule is malformed: a missing or unknown field, a
	// value of the wrong type, an unknown modifier or field name.
	ErrInvalid = errors.New("invalid rule")
	// ErrUnsupported means a rule uses a feature of Sigma that
	// accessledger does not implement; the error names the feature.
	ErrUnsupported = errors.New("unsupported Sigma feature")
)

// Error is one problem with a rule file, at a line.
type Error struct {
	File   string
	Line   int
	Column int
	// Feature names the unsupported Sigma feature, for ErrUnsupported.
	Feature string
	Msg     string
	kind    error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, "%d:", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.kind == ErrUnsupported {
		fmt.Fprintf(&b, "unsupported Sigma feature %q: ", e.Feature)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns ErrInvalid or ErrUnsupported.
func (e *Error) Unwrap() error { return e.kind }

// Errors lists every problem found in a set of rule files, in file and
// line order.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns the errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errList collects errors for one file.
type errList struct {
	file string
	errs Errors
}

func (l *errList) at(n *yaml.Node, format string, args ...any) {
	e := &Error{File: l.file, Msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *errList) unsupported(n *yaml.Node, feature, format string, args ...any) {
	e := &Error{File: l.file, Feature: feature, Msg: fmt.Sprintf(format, args...), kind: ErrUnsupported}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

// pos is a place in a rule file.
type pos struct {
	file      string
	line, col int
}

func posOf(file string, n *yaml.Node) pos { return pos{file, n.Line, n.Column} }

func (p pos) errorf(format string, args ...any) *Error {
	return &Error{File: p.file, Line: p.line, Column: p.col, Msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
}

func (p pos) String() string { return fmt.Sprintf("%s:%d", p.file, p.line) }
