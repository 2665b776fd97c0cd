package rulepack

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/cityhub/cityhub/services/platform/catalog"
)

// LoadDir loads, validates and compiles every *.yaml and *.yml file in dir,
// in name order. See LoadFiles.
func LoadDir(dir string, cat *catalog.Catalog) ([]*Pack, error) {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, fmt.Errorf("rule packs in %s: %w", dir, err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("rule packs in %s: no *.yaml files", dir)
	}
	sort.Strings(files)
	return LoadFiles(cat, files...)
}

// LoadFiles loads, validates and compiles the packs in files. It reports
// every problem of every file at once as an Errors value, including pack
// names used by more than one file; it returns no packs unless all are good.
func LoadFiles(cat *catalog.Catalog, files ...string) ([]*Pack, error) {
	var errs Errors
	var packs []*Pack
	byName := map[string]string{}
	h := newHelpers(cat)
	for _, f := range files {
		b, err := readFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Err: err})
			continue
		}
		p, err := Parse(f, b)
		if err == nil {
			err = compile(p, h)
		}
		if err != nil {
			var pe Errors
			if errors.As(err, &pe) {
				errs = append(errs, pe...)
			} else {
				errs = append(errs, &Error{File: f, Err: err})
			}
			continue
		}
		if other, dup := byName[p.Name]; dup {
			errs = append(errs, &Error{File: f, Err: fmt.Errorf("pack %q is also defined in %s", p.Name, other)})
			continue
		}
		byName[p.Name] = f
		packs = append(packs, p)
	}
	if len(errs) == 0 {
		errs = checkMuteRules(packs)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return packs, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	return b, nil
}

// Rules returns the rules of packs, in pack and file order.
func Rules(packs []*Pack) []*Rule {
	var out []*Rule
	for _, p := range packs {
		out = slices.Concat(out, p.Rules)
	}
	return out
}
