package rulepack

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fullEvent sets every field of an event, each to a value of its own.
func fullEvent() *cityhubv1.Event {
	return &cityhubv1.Event{
		Id: "e-1", Source: "iot", Type: "waterlogging",
		OccurredAt: timestamppb.New(time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)),
		ReceivedAt: timestamppb.New(time.Date(2025, 7, 1, 8, 0, 2, 0, time.UTC)),
		Location: &cityhubv1.Location{
			Lon: 121.4378, Lat: 31.199,
			District: "xuhui", Street: "tianping", Grid: "xh-0412", Address: "天平路 1 号",
		},
		Severity: cityhubv1.Severity_SEVERITY_SEVERE,
		Text:     "积水",
		Attrs:    &structpb.Struct{Fields: map[string]*structpb.Value{"water_depth_cm": structpb.NewNumberValue(35)}},
	}
}

// goType is the Go type Env gives a field of kind k.
func goType(k FieldKind) reflect.Type {
	switch k {
	case FieldString:
		return reflect.TypeFor[string]()
	case FieldNumber:
		return reflect.TypeFor[float64]()
	case FieldTime:
		return reflect.TypeFor[time.Time]()
	}
	return nil
}

// TestEventFieldTable checks that each row of the table is whole and that
// no two rows claim one name.
func TestEventFieldTable(t *testing.T) {
	paths, labels := map[string]bool{}, map[string]bool{}
	ev := fullEvent()
	texts := map[string]string{}
	for _, f := range EventFields() {
		// TemplateData nests one level.
		if paths[f.Path] || !regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)?$`).MatchString(f.Path) || strings.HasPrefix(f.Path, "attrs") {
			t.Errorf("path %q: repeated, nested more than once, or taken by attributes", f.Path)
		}
		paths[f.Path] = true
		if f.Label != "" {
			if labels[f.Label] || strings.HasPrefix(f.Label, "attrs.") {
				t.Errorf("%s: label %q repeated or taken by attributes", f.Path, f.Label)
			}
			labels[f.Label] = true
		}
		if (f.Label != "" || f.Distinct) && f.Kind != FieldString {
			t.Errorf("%s: a label or a distinct value must be a string", f.Path)
		}
		set := [...]bool{FieldString: f.Text != nil, FieldNumber: f.Number != nil, FieldTime: f.Time != nil}
		for k, ok := range set {
			if k != 0 && ok != (FieldKind(k) == f.Kind) {
				t.Errorf("%s: kind %d, but the getter of kind %d is set %v", f.Path, f.Kind, k, ok)
			}
		}
		// A getter that reads another field's value is a copy-paste slip.
		if f.Kind == FieldString {
			v := f.Text(ev)
			if other, dup := texts[v]; dup {
				t.Errorf("%s reads %q, as %s does", f.Path, v, other)
			}
			if v == "" {
				t.Errorf("%s reads nothing from an event that has every field", f.Path)
			}
			texts[v] = f.Path
			if f.Text(nil) != "" {
				t.Errorf("%s of a nil event is %q", f.Path, f.Text(nil))
			}
		}
	}
}

// envFields returns the leaves of Event as conditions name them, by expr
// tag, with their Go types; time.Time is a leaf.
func envFields(t *testing.T) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Tag.Get("expr")
			if name == "" {
				t.Errorf("%s%s has no expr tag", prefix, f.Name)
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(prefix+name+".", f.Type)
				continue
			}
			out[prefix+name] = f.Type
		}
	}
	env := reflect.TypeFor[Env]()
	if f, ok := env.FieldByName("Event"); !ok || f.Tag.Get("expr") != "event" || f.Type != reflect.TypeFor[Event]() {
		t.Fatalf("Env must show the event as `event`")
	}
	walk("", reflect.TypeFor[Event]())
	return out
}

// TestEnvMatchesEventFields holds Env, which expr type-checks conditions
// against, to the table: the same fields, names and types, and Reset fills
// each with what the table's getter reads. A field added to one and not
// the other fails here.
func TestEnvMatchesEventFields(t *testing.T) {
	got := envFields(t)
	want := map[string]reflect.Type{"attrs": reflect.TypeFor[map[string]any]()}
	for _, f := range EventFields() {
		want[f.Path] = goType(f.Kind)
	}
	for path, typ := range want {
		if got[path] != typ {
			t.Errorf("event.%s: Env has %v, the table says %v", path, got[path], typ)
		}
	}
	for path, typ := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("event.%s (%v) is in Env but not in the table", path, typ)
		}
	}

	for _, ev := range []*cityhubv1.Event{fullEvent(), {}, nil} {
		var env Env
		env.Reset(ev)
		for _, f := range EventFields() {
			prog, err := expr.Compile("event."+f.Path, exprOptions(nil, Env{})...)
			if err != nil {
				t.Fatalf("event.%s: %v", f.Path, err)
			}
			if typ := prog.Node().Type(); typ != goType(f.Kind) {
				t.Errorf("event.%s: expr types it %v", f.Path, typ)
			}
			v, err := expr.Run(prog, &env)
			if err != nil {
				t.Fatalf("event.%s: %v", f.Path, err)
			}
			if tv, ok := v.(time.Time); ok {
				if !tv.Equal(f.Time(ev)) || tv.IsZero() != f.Time(ev).IsZero() {
					t.Errorf("event.%s of %v: Env has %v, the table reads %v", f.Path, ev, tv, f.Time(ev))
				}
			} else if v != f.value(ev) {
				t.Errorf("event.%s of %v: Env has %v, the table reads %v", f.Path, ev, v, f.value(ev))
			}
		}
	}
}

// TestReadersFollowTheTable checks what is derived from the table: labels,
// distinct fields and template data.
func TestReadersFollowTheTable(t *testing.T) {
	ev := fullEvent()
	var env Env
	env.Reset(ev)
	data := env.TemplateData(map[string]string{"district": "xuhui"})
	event := data["event"].(map[string]any)
	for _, f := range EventFields() {
		if f.Label != "" && (!ValidLabel(f.Label) || env.Label(f.Label) != f.Text(ev)) {
			t.Errorf("label %s: valid %v, value %q", f.Label, ValidLabel(f.Label), env.Label(f.Label))
		}
		for _, written := range []string{f.Path, "event." + f.Path} {
			path, ok := FieldPath(written)
			if ok != f.Distinct || (ok && (path != f.Path || env.Value(path) != f.Text(ev))) {
				t.Errorf("count.distinct %s: %q, %v", written, path, ok)
			}
		}
		m, name := event, f.Path
		if parent, leaf, nested := strings.Cut(f.Path, "."); nested {
			m, name = event[parent].(map[string]any), leaf
		}
		if got := m[name]; !reflect.DeepEqual(got, f.value(ev)) {
			t.Errorf(".event.%s = %v, want %v", f.Path, got, f.value(ev))
		}
	}
	if len(event) != 8 || len(event["location"].(map[string]any)) != 6 || event["attrs"].(map[string]any)["water_depth_cm"] != 35.0 {
		t.Errorf(".event = %v", event)
	}
	if env.Label("attrs.water_depth_cm") != "35" || env.Value("attrs.water_depth_cm") != "35" || !ValidLabel("attrs.water_depth_cm") {
		t.Error("attributes as labels")
	}
	for _, bad := range []string{"location.street", "address", "id", "lon"} {
		if ValidLabel(bad) {
			t.Errorf("ValidLabel(%q)", bad)
		}
	}
}

// TestPackSchemaListsTheTable holds the editors' JSON schema, which cannot
// import the table, to it: the labels group_by, matchers and
// count.distinct accept.
func TestPackSchemaListsTheTable(t *testing.T) {
	b, err := os.ReadFile("../../../rules/schema/pack.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Defs struct {
			Label struct {
				AnyOf []struct {
					Enum []string `json:"enum"`
				} `json:"anyOf"`
			} `json:"label"`
			Rule struct {
				Properties struct {
					Count struct {
						Properties struct {
							Distinct struct {
								Pattern string `json:"pattern"`
							} `json:"distinct"`
						} `json:"properties"`
					} `json:"count"`
				} `json:"properties"`
			} `json:"rule"`
			Matchers struct {
				PropertyNames struct {
					Pattern string `json:"pattern"`
				} `json:"propertyNames"`
			} `json:"matchers"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	var enum []string
	for _, alt := range schema.Defs.Label.AnyOf {
		enum = append(enum, alt.Enum...)
	}
	labels := labelNames()
	if !slices.Equal(slices.Sorted(slices.Values(enum)), slices.Sorted(slices.Values(labels))) {
		t.Errorf("the schema's labels are %v, the table's %v", enum, labels)
	}
	distinct := regexp.MustCompile(schema.Defs.Rule.Properties.Count.Properties.Distinct.Pattern)
	matcher := regexp.MustCompile(schema.Defs.Matchers.PropertyNames.Pattern)
	for _, f := range EventFields() {
		if distinct.MatchString(f.Path) != f.Distinct || distinct.MatchString("event."+f.Path) != f.Distinct {
			t.Errorf("the schema's count.distinct takes %s: %v, the table: %v", f.Path, !f.Distinct, f.Distinct)
		}
		if f.Label != "" && !matcher.MatchString(f.Label) {
			t.Errorf("the schema's matchers refuse the label %s", f.Label)
		}
	}
}
