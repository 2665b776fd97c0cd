package rulecheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// CatalogFile is the name of the catalog file that FindCatalog looks for.
const CatalogFile = "catalog.yaml"

// Kind is what a YAML file under rules/ holds.
type Kind int

const (
	// Other is neither a pack nor a test file: the catalog, for one.
	Other Kind = iota
	// PackFile has a top-level `pack:` key.
	PackFile
	// TestFile has a top-level `tests:` key.
	TestFile
	// NotifyFile is notify.yaml: top-level `receivers:` and `routes:`.
	NotifyFile
)

// Files are the packs and test files found under some paths, each list in
// the order found.
type Files struct {
	Packs  []string
	Tests  []string
	Notify []string
}

// Expand finds the files that paths name. A file is taken as it is: as a
// test file when it has a top-level `tests:` key, as notify.yaml when it
// has `receivers:` and `routes:`, otherwise as a pack (so that a pack too
// broken to classify still has its errors reported). A directory is
// searched recursively, skipping hidden ones, for *.yaml and *.yml files
// that are packs, test files or notify.yaml; other YAML there, such as the
// catalog, is left alone.
func Expand(paths []string) (Files, error) {
	var out Files
	seen := map[string]bool{}
	add := func(path string, k Kind) {
		clean := filepath.Clean(path)
		if seen[clean] {
			return
		}
		seen[clean] = true
		switch k {
		case PackFile:
			out.Packs = append(out.Packs, path)
		case TestFile:
			out.Tests = append(out.Tests, path)
		case NotifyFile:
			out.Notify = append(out.Notify, path)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		if !st.IsDir() {
			k := Classify(p)
			if k == Other {
				k = PackFile
			}
			add(p, k)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		slices.Sort(found)
		for _, f := range found {
			add(f, Classify(f))
		}
	}
	return out, nil
}

// Classify tells a pack from a test file by its top-level keys. A file that
// cannot be read or parsed is Other.
func Classify(path string) Kind {
	b, err := readLimited(path, rulepack.MaxFileBytes)
	if err != nil {
		return Other
	}
	return classify(b)
}

func classify(b []byte) Kind {
	var top map[string]yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&top); err != nil {
		return Other
	}
	switch {
	case hasKey(top, "pack"):
		return PackFile
	case hasKey(top, "tests"):
		return TestFile
	case hasKey(top, "receivers") && hasKey(top, "routes"):
		return NotifyFile
	}
	return Other
}

func hasKey(m map[string]yaml.Node, k string) bool {
	_, ok := m[k]
	return ok
}

// FindCatalog returns the catalog for path: the first catalog.yaml in the
// directory path names (or holds path) or in any directory above it.
func FindCatalog(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	dir := abs
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		dir = filepath.Dir(abs)
	}
	for {
		c := filepath.Join(dir, CatalogFile)
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return relative(c), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s in the directory of %s or above it; give --catalog FILE", CatalogFile, path)
		}
		dir = parent
	}
}

// relative returns path relative to the working directory when it lies
// below it, so that messages stay short.
func relative(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if r, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// LoadCatalog loads the catalog at path, or, when path is empty, the one
// FindCatalog finds for the first of paths.
func LoadCatalog(path string, paths []string) (*catalog.Catalog, string, error) {
	if path == "" {
		if len(paths) == 0 {
			return nil, "", errors.New("no catalog: give --catalog FILE")
		}
		found, err := FindCatalog(paths[0])
		if err != nil {
			return nil, "", err
		}
		path = found
	}
	cat, err := catalog.Load(path)
	if err != nil {
		return nil, path, err
	}
	return cat, path, nil
}

func readLimited(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}
