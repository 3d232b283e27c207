package detect

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Lists holds named lists of values, which rules use through the expand
// modifier: source.ip|cidr|expand: '%deny_cidrs%' matches any CIDR of the
// list deny_cidrs. A list is a file <name>.txt with one value per line;
// blank lines and everything after a # are ignored.
type Lists map[string][]string

// LoadLists reads every <name>.txt file directly in dir of fsys. Names are
// lower-case letters, digits and underscores.
func LoadLists(fsys fs.FS, dir string) (Lists, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading lists: %w", err)
	}
	out := Lists{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".txt")
		if e.IsDir() || !ok {
			continue
		}
		if !validListName(name) {
			return nil, fmt.Errorf("list file %s: the name must be lower-case letters, digits and underscores", e.Name())
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading lists: %w", err)
		}
		out[name] = ParseList(data)
	}
	return out, nil
}

// ParseList parses a list file: one value per line, # starts a comment.
func ParseList(data []byte) []string {
	var vals []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			vals = append(vals, line)
		}
	}
	return vals
}

// With returns the lists of l overridden, name by name, by those of o.
func (l Lists) With(o Lists) Lists {
	out := make(Lists, len(l)+len(o))
	for k, v := range l {
		out[k] = v
	}
	for k, v := range o {
		out[k] = v
	}
	return out
}

// Names returns the list names, sorted.
func (l Lists) Names() []string {
	names := make([]string, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func validListName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// expandPlaceholders replaces every %name% of v by each value of the named
// list (a value with two placeholders expands to every combination). \%
// is a plain percent sign.
func expandPlaceholders(v string, lists Lists) ([]string, error) {
	out := []string{""}
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v) && v[i+1] == '%':
			for j := range out {
				out[j] += "%"
			}
			i += 2
		case c == '%':
			end := strings.IndexByte(v[i+1:], '%')
			if end < 0 {
				return nil, fmt.Errorf("unterminated placeholder in %q (write \\%% for a plain percent sign)", v)
			}
			name := v[i+1 : i+1+end]
			vals, ok := lists[name]
			if !ok {
				return nil, fmt.Errorf("unknown named list %%%s%% (loaded lists: %s)", name, strings.Join(lists.Names(), ", "))
			}
			next := make([]string, 0, len(out)*len(vals))
			for _, o := range out {
				for _, lv := range vals {
					next = append(next, o+lv)
				}
			}
			if len(next) > 1<<20 {
				return nil, fmt.Errorf("%q expands to more than a million values", v)
			}
			out = next
			i += end + 2
		default:
			for j := range out {
				out[j] += string(c)
			}
			i++
		}
	}
	return out, nil
}
