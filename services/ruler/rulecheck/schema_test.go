package rulecheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/cityhub/cityhub/services/ruler/rulepack"
	"github.com/cityhub/cityhub/services/ruler/ruletest"
)

const rulesDir = "../../../rules"

// compileSchema compiles one of the schemas in rules/schema.
func compileSchema(t *testing.T, name string) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rulesDir, "schema", name))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return s, raw
}

// yamlValue converts a YAML document to the JSON value an editor's YAML
// language server validates: YAML 1.2 core types, timestamps as strings.
func yamlValue(t *testing.T, b []byte) any {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		t.Fatal(err)
	}
	return nodeValue(t, &n)
}

func nodeValue(t *testing.T, n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		return nodeValue(t, n.Content[0])
	case yaml.AliasNode:
		return nodeValue(t, n.Alias)
	case yaml.SequenceNode:
		out := []any{}
		for _, c := range n.Content {
			out = append(out, nodeValue(t, c))
		}
		return out
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			out[n.Content[i].Value] = nodeValue(t, n.Content[i+1])
		}
		return out
	}
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		v, _ := strconv.ParseBool(n.Value)
		return v
	case "!!int", "!!float":
		return json.Number(n.Value)
	}
	return n.Value
}

// TestFilesMatchSchemas validates every pack and test file of the
// repository, and the parser's own good packs, against the schemas, and
// checks that each file of rules/ names its schema on its first line for
// editors.
func TestFilesMatchSchemas(t *testing.T) {
	packSchema, _ := compileSchema(t, "pack.schema.json")
	testSchema, _ := compileSchema(t, "test.schema.json")
	for _, c := range []struct {
		glob   string
		schema *jsonschema.Schema
		header string
	}{
		{rulesDir + "/packs/*.yaml", packSchema, "# yaml-language-server: $schema=../schema/pack.schema.json"},
		{rulesDir + "/tests/*.yaml", testSchema, "# yaml-language-server: $schema=../schema/test.schema.json"},
		{"../rulepack/testdata/*.good.yaml", packSchema, ""},
		{"testdata/*.good.yaml", packSchema, ""},
	} {
		files, _ := filepath.Glob(c.glob)
		if len(files) == 0 {
			t.Errorf("no files match %s", c.glob)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if c.header != "" && !bytes.HasPrefix(b, []byte(c.header+"\n")) {
				t.Errorf("%s: the first line must be %q", f, c.header)
			}
			if err := c.schema.Validate(yamlValue(t, b)); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

// TestSchemaRefusesWhatTheParserRefuses spot-checks that the schema is not
// merely permissive.
func TestSchemaRefusesWhatTheParserRefuses(t *testing.T) {
	packSchema, _ := compileSchema(t, "pack.schema.json")
	for _, doc := range []string{
		"pack: p\nowner: o\nrules: [{id: a, when: 'true', severity: awful}]\n",
		"pack: p\nowner: o\nrules: [{id: a, when: 'true', severity: minor, colour: red}]\n",
		"pack: p\nowner: o\nrules: [{id: A, when: 'true', severity: minor}]\n",
		"pack: p\nowner: o\nrules: [{id: a, when: 'true', severity: minor, count: {at_least: 0, within: 5m}}]\n",
		"pack: p\nowner: o\nrules: [{id: a, when: 'true', severity: minor, resolve_after: 5 minutes}]\n",
		"pack: p\nowner: o\nrules: [{id: a, when: 'true', severity: minor, group_by: [colour]}]\n",
		"pack: p\nowner: o\n",
	} {
		if err := packSchema.Validate(yamlValue(t, []byte(doc))); err == nil {
			t.Errorf("the schema accepts %q", doc)
		}
		if p, err := rulepack.Parse("x.yaml", []byte(doc)); err == nil && rulepack.Compile(p, nil) == nil {
			t.Errorf("the parser accepts %q", doc)
		}
	}
}

// schemaObjects returns, for each object of a schema, reached from the
// root along property names ("*" for the items of a list), its property
// names. $ref, oneOf and anyOf are followed.
func schemaObjects(root map[string]any) map[string][]string {
	out := map[string][]string{}
	var walk func(path string, s map[string]any, depth int)
	walk = func(path string, s map[string]any, depth int) {
		if depth > 12 {
			return
		}
		if ref, ok := s["$ref"].(string); ok {
			def := root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			walk(path, def, depth+1)
		}
		for _, k := range []string{"oneOf", "anyOf"} {
			if alts, ok := s[k].([]any); ok {
				for _, a := range alts {
					walk(path, a.(map[string]any), depth+1)
				}
			}
		}
		if items, ok := s["items"].(map[string]any); ok {
			walk(path+".*", items, depth+1)
		}
		if props, ok := s["properties"].(map[string]any); ok {
			for name, p := range props {
				if !slices.Contains(out[path], name) {
					out[path] = append(out[path], name)
				}
				walk(path+"."+name, p.(map[string]any), depth+1)
			}
		}
	}
	walk("", root, 0)
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// TestPackSchemaKeysAreParserKeys probes the parser with every property
// the schema names, at its place: the parser must not call any of them
// unknown. A key the parser dropped, or a typo in the schema, fails here.
func TestPackSchemaKeysAreParserKeys(t *testing.T) {
	_, raw := compileSchema(t, "pack.schema.json")
	objects := schemaObjects(raw)
	if len(objects[".rules.*"]) == 0 || len(objects[".rules.*.count"]) == 0 {
		t.Fatalf("schema walk found %v", objects)
	}
	for path, names := range objects {
		for _, name := range names {
			doc := probe(path, name)
			b, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = rulepack.Parse("probe.yaml", b)
			if err != nil && strings.Contains(err.Error(), fmt.Sprintf("unknown field %q", name)) {
				t.Errorf("the schema has %s.%s, the parser does not know it:\n%s", path, name, b)
			}
		}
	}
}

// probe returns a small pack with key set (to null) in the object at path.
func probe(path, key string) map[string]any {
	doc := map[string]any{
		"pack": "p", "owner": "o",
		"rules": []any{map[string]any{"id": "a", "when": "true", "severity": "minor"}},
	}
	var cur any = doc
	for _, seg := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		if seg == "" {
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				next = map[string]any{}
				if seg == "rules" || seg == "silences" || seg == "inhibit" || seg == "escalate" {
					next = []any{map[string]any{}}
				}
				c[seg] = next
			}
			cur = next
		case []any:
			cur = c[0]
		}
	}
	if l, ok := cur.([]any); ok {
		cur = l[0]
	}
	cur.(map[string]any)[key] = nil
	return doc
}

// packFields maps the exported fields of rulepack's types to the schema
// object and property that carry them ("" for fields computed by the
// parser or the compiler, which no one writes).
var packFields = map[reflect.Type]map[string]string{
	reflect.TypeFor[rulepack.Pack](): {
		"File": "", "Name": ".pack", "Owner": ".owner", "Version": ".version", "Rules": ".rules",
		"Silences": ".silences", "Inhibits": ".inhibit",
	},
	reflect.TypeFor[rulepack.Rule](): {
		"Pack": "", "PackVersion": "", "Pos": "", "Fields": "", "Program": "", "ClearProgram": "",
		"Operands": "", "TitleTemplate": "", "SummaryTemplate": "", "Types": "", "ClearTypes": "",
		"ID": ".rules.*.id", "Description": ".rules.*.description", "When": ".rules.*.when",
		"Severity": ".rules.*.severity", "GroupBy": ".rules.*.group_by", "Title": ".rules.*.title",
		"Summary": ".rules.*.summary", "Escalate": ".rules.*.escalate", "Count": ".rules.*.count",
		"For": ".rules.*.for", "ResolveAfter": ".rules.*.resolve_after", "ClearWhen": ".rules.*.clear_when",
		"Dispatch": ".rules.*.dispatch", "Shadow": ".rules.*.shadow", "Publish": ".rules.*.publish",
		"Absent": ".rules.*.absent", "Active": ".rules.*.active",
	},
	reflect.TypeFor[rulepack.Absent](): {"For": ".rules.*.absent.for"},
	reflect.TypeFor[rulepack.Step](): {
		"Pos": "", "Program": "",
		"When": ".rules.*.escalate.*.when", "Severity": ".rules.*.escalate.*.severity",
	},
	reflect.TypeFor[rulepack.Count](): {
		"AtLeast": ".rules.*.count.at_least", "Within": ".rules.*.count.within", "Distinct": ".rules.*.count.distinct",
	},
	reflect.TypeFor[rulepack.Dispatch](): {
		"Lead": ".rules.*.dispatch.lead", "Assist": ".rules.*.dispatch.assist", "CaseClass": ".rules.*.dispatch.case_class",
		"Accept": ".rules.*.dispatch.sla.accept", "Handle": ".rules.*.dispatch.sla.handle",
	},
	reflect.TypeFor[rulepack.Silence](): {
		"Pack": "", "Pos": "",
		"Name": ".silences.*.name", "Matchers": ".silences.*.matchers", "Starts": ".silences.*.starts",
		"Ends": ".silences.*.ends", "Reason": ".silences.*.reason", "CreatedBy": ".silences.*.created_by",
	},
	reflect.TypeFor[rulepack.Inhibit](): {
		"Pack": "", "Pos": "",
		"Source": ".inhibit.*.source", "Target": ".inhibit.*.target", "Equal": ".inhibit.*.equal",
	},
}

// TestParserFieldsAreInSchema checks the other way round: every field of
// rulepack's pack types is either known to be computed or has its
// property in the schema. A field added to the parser without the schema
// fails here.
func TestParserFieldsAreInSchema(t *testing.T) {
	_, raw := compileSchema(t, "pack.schema.json")
	objects := schemaObjects(raw)
	for typ, fields := range packFields {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			where, ok := fields[f.Name]
			if !ok {
				t.Errorf("rulepack.%s.%s is new: add it to rules/schema/pack.schema.json and to packFields", typ.Name(), f.Name)
				continue
			}
			if where == "" {
				continue
			}
			parent, name := where[:strings.LastIndex(where, ".")], where[strings.LastIndex(where, ".")+1:]
			if !slices.Contains(objects[parent], name) {
				t.Errorf("rulepack.%s.%s: the schema has no %s", typ.Name(), f.Name, where)
			}
		}
	}
}

// TestTestSchemaKeysAreRunnerKeys checks that each object of the test
// schema has exactly the fields that package ruletest decodes.
func TestTestSchemaKeysAreRunnerKeys(t *testing.T) {
	_, raw := compileSchema(t, "test.schema.json")
	objects := schemaObjects(raw)
	for path, typ := range map[string]reflect.Type{
		"":                                 reflect.TypeFor[ruletest.File](),
		".tests.*":                         reflect.TypeFor[ruletest.Case](),
		".tests.*.events.*":                reflect.TypeFor[ruletest.TimedEvent](),
		".tests.*.events.*.event":          reflect.TypeFor[ruletest.Event](),
		".tests.*.events.*.event.location": reflect.TypeFor[ruletest.Location](),
		".tests.*.expect.*":                reflect.TypeFor[ruletest.Expectation](),
	} {
		var want []string
		for i := range typ.NumField() {
			if tag := strings.Split(typ.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
				want = append(want, tag)
			}
		}
		slices.Sort(want)
		if !slices.Equal(objects[path], want) {
			t.Errorf("test schema object %q has %v; ruletest.%s decodes %v", path, objects[path], typ.Name(), want)
		}
	}
}
