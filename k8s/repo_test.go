package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// modulePrefix is the import path every cityhub module shares.
const modulePrefix = "github.com/cityhub/cityhub/"

// repo is what the manifests are checked against: the programs their
// images are built from, and the repository's own files. Safe for
// concurrent use.
type repo struct {
	root   string
	binDir string

	mu       sync.Mutex
	programs map[string]*program
}

// program is a main package of the repository, built.
type program struct {
	importPath string
	// env holds every environment variable the program reads: those its
	// flags take their defaults from, as -h prints them ("(env NAME)"),
	// and those its own files read with os.Getenv, os.LookupEnv or
	// config.Env.
	env map[string]bool
	// err says why the package is no program of this repository, or did
	// not build.
	err error
}

func newRepo(root, binDir string) *repo {
	return &repo{root: root, binDir: binDir, programs: map[string]*program{}}
}

// program returns the program built from the package importPath; load
// builds it first if nobody has.
func (r *repo) program(importPath string) *program {
	if err := r.load(importPath); err != nil {
		return &program{importPath: importPath, err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.programs[importPath]
}

// load lists, builds and questions the programs of importPaths that it
// has not yet, with one go build for all of them.
func (r *repo) load(importPaths ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var todo []string
	for _, p := range importPaths {
		if _, ok := r.programs[p]; !ok && !slices.Contains(todo, p) {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	slices.Sort(todo)
	pkgs, err := r.list(todo)
	if err != nil {
		return err
	}
	var mains []string
	for _, p := range todo {
		pkg := pkgs[p]
		switch {
		case pkg == nil || pkg.err != "":
			msg := "go list said nothing of it"
			if pkg != nil {
				msg = pkg.err
			}
			r.programs[p] = &program{importPath: p, err: fmt.Errorf("not a package of this repository: %s", msg)}
		case !strings.HasPrefix(pkg.module+"/", modulePrefix):
			r.programs[p] = &program{importPath: p, err: fmt.Errorf("a package of %s, not of this repository", pkg.module)}
		case pkg.name != "main":
			r.programs[p] = &program{importPath: p, err: fmt.Errorf("package %s, not a main package", pkg.name)}
		default:
			mains = append(mains, p)
		}
	}
	if len(mains) == 0 {
		return nil
	}
	// One build for all: the go command shares the work between them.
	out, err := r.goCmd(append([]string{"build", "-o", r.binDir + string(filepath.Separator)}, mains...)...).CombinedOutput()
	if err != nil {
		for _, p := range mains {
			r.programs[p] = &program{importPath: p, err: fmt.Errorf("does not build: %v\n%s", err, out)}
		}
		return nil
	}
	for _, p := range mains {
		prog := &program{importPath: p, env: map[string]bool{}}
		prog.err = errors.Join(
			r.flagEnv(prog, filepath.Join(r.binDir, path.Base(p))),
			directEnv(prog, pkgs[p].dir, pkgs[p].files),
		)
		r.programs[p] = prog
	}
	return nil
}

// listed is what go list says of one package.
type listed struct {
	name, module, dir, err string
	files                  []string
}

// list runs go list on importPaths; a path that is no package comes back
// with its error.
func (r *repo) list(importPaths []string) (map[string]*listed, error) {
	const format = `{{.ImportPath}}{{"\t"}}{{.Name}}{{"\t"}}{{with .Module}}{{.Path}}{{end}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .GoFiles ","}}{{"\t"}}{{with .Error}}{{.Err}}{{end}}`
	out, err := r.goCmd(append([]string{"list", "-e", "-f", format}, importPaths...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	pkgs := map[string]*listed{}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 6 {
			return nil, fmt.Errorf("go list: unexpected line %q", line)
		}
		pkgs[f[0]] = &listed{name: f[1], module: f[2], dir: f[3], err: strings.TrimSpace(f[5])}
		if f[4] != "" {
			pkgs[f[0]].files = strings.Split(f[4], ",")
		}
	}
	return pkgs, nil
}

// goCmd is the go command at the repository's root, in its workspace
// even when the test itself runs with GOWORK=off.
func (r *repo) goCmd(args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Dir = r.root
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(r.root, "go.work"))
	return cmd
}

// envUsage finds the variables the flags' usage names: package config
// adds "(env NAME)" to every flag it defines.
var envUsage = regexp.MustCompile(`\(env ([A-Z_][A-Z0-9_]*)\)`)

// flagEnv runs the binary with -h and records the variables its flags
// read.
func (r *repo) flagEnv(prog *program, bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h")
	cmd.Env = []string{} // the usage shows defaults; keep ours out of them
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// flag.ExitOnError exits 0 on -h; anything else is reported but the
	// usage is still read.
	runErr := cmd.Run()
	found := envUsage.FindAllStringSubmatch(out.String(), -1)
	if len(found) == 0 {
		return fmt.Errorf("%s -h named no environment variable (%v):\n%s", bin, runErr, out.String())
	}
	for _, m := range found {
		prog.env[m[1]] = true
	}
	return nil
}

// directEnv records the variables the package's own files read by name,
// outside its flags: os.Getenv("X"), os.LookupEnv("X"), config.Env("X", …).
func directEnv(prog *program, dir string, files []string) error {
	readers := map[string][]string{
		"os": {"Getenv", "LookupEnv"},
		modulePrefix + "services/platform/config": {"Env"},
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		local := map[string][]string{} // the file's name of each package → its readers
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if funcs, ok := readers[p]; ok {
				n := path.Base(p)
				if imp.Name != nil {
					n = imp.Name.Name
				}
				local[n] = funcs
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || !slices.Contains(local[pkg.Name], sel.Sel.Name) {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil {
					prog.env[v] = true
				}
			}
			return true
		})
	}
	return nil
}

// file reads a file of the repository.
func (r *repo) file(rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(r.root, filepath.FromSlash(rel)))
}

// glob lists the repository's files matching pattern, relative to the root.
func (r *repo) glob(pattern string) []string {
	m, _ := filepath.Glob(filepath.Join(r.root, filepath.FromSlash(pattern)))
	var out []string
	for _, f := range m {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			rel, _ := filepath.Rel(r.root, f)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	return out
}

// topics returns the Kafka topics the services use: the string literals
// of stream.DefaultTopics, read from its source so that this module need
// not depend on the services'.
func (r *repo) topics() ([]string, error) {
	const file = "services/platform/stream/topics.go"
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(r.root, file), nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "DefaultTopics" {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil {
					out = append(out, v)
				}
			}
			return true
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: found no topic names in DefaultTopics", file)
	}
	return out, nil
}

// envRefs returns the variables a notify.yaml takes secrets from: every
// {env: NAME} in it.
func envRefs(notifyYAML []byte) ([]string, error) {
	var doc any
	if err := yaml.Unmarshal(notifyYAML, &doc); err != nil {
		return nil, err
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if name, ok := v["env"].(string); ok && len(v) == 1 {
				out = append(out, name)
				return
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	slices.Sort(out)
	return slices.Compact(out), nil
}
