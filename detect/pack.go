package detect

import (
	"embed"
	"io/fs"
)

// pack holds the default rule pack and its starter named lists.
//
//go:embed pack/rules/*.yml pack/lists/*.txt
var pack embed.FS

// DefaultRules returns the default rule pack: Sigma rules and correlation
// rules over accessledger events, each with inline tests. Load it with
// LoadRules(DefaultRules(), ".").
func DefaultRules() fs.FS {
	sub, err := fs.Sub(pack, "pack/rules")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// DefaultLists returns the starter named lists of the default pack
// (bogon_cidrs, hosting_asns, ...), which an operator's lists replace name
// by name.
func DefaultLists() Lists {
	l, err := LoadLists(pack, "pack/lists")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return l
}

// LoadDefault loads and compiles the default pack with cfg; cfg.Lists, if
// set, override the starter lists name by name.
func LoadDefault(cfg Config) (*Engine, error) {
	rs, err := LoadRules(DefaultRules(), ".")
	if err != nil {
		return nil, err
	}
	cfg.Lists = DefaultLists().With(cfg.Lists)
	return Compile(rs, cfg)
}
