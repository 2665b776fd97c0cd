package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// The schema editors check notify.yaml with takes every config Load takes:
// the shipped one and the good testdata.
func TestSchemaTakesWhatLoadTakes(t *testing.T) {
	b, err := os.ReadFile("../../../rules/schema/notify.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("notify.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("notify.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*.good.yaml")
	files = append(files, "../../../rules/notify.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			y, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := yaml.Unmarshal(y, &v); err != nil {
				t.Fatal(err)
			}
			// Through JSON, as an editor sees the file: dates as strings.
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Errorf("the schema refuses %s: %v", f, err)
			}
		})
	}
	// And refuses what is plainly wrong.
	var bad any
	json.Unmarshal([]byte(`{"receivers":[{"name":"x","inbox":{},"sms":{"url":"http://s"}}],"routes":{"receivers":"x"},"colour":"red"}`), &bad)
	if err := schema.Validate(bad); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("the schema took an unknown field: %v", err)
	}
}
