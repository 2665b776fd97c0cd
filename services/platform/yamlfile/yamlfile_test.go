package yamlfile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("want low or high")
	}
	return nil
}

type person struct {
	At    Pos       `yaml:"-"`
	Where Positions `yaml:"-"`
	Name  string    `yaml:"name"`
	Phone string    `yaml:"phone"`
}

type doc struct {
	Title   string            `yaml:"title"`
	Wait    time.Duration     `yaml:"wait"`
	Count   int               `yaml:"count"`
	Ratio   float64           `yaml:"ratio"`
	On      bool              `yaml:"on"`
	Level   level             `yaml:"level"`
	People  []person          `yaml:"people"`
	Labels  map[string]string `yaml:"labels"`
	Head    *person           `yaml:"head"`
	private int
}

func TestDecodeGood(t *testing.T) {
	src := `title: 汛期值班
wait: 5m
count: 3
ratio: 0.5
on: true
level: high
people:
  - name: 张伟
    phone: 13800000000
labels: {district: xuhui}
head: {name: 陈}
`
	var d doc
	if errs := Decode("n.yaml", []byte(src), 1<<20, &d); errs.Err() != nil {
		t.Fatal(errs.Err())
	}
	if d.Title != "汛期值班" || d.Wait != 5*time.Minute || d.Count != 3 || d.Ratio != 0.5 || !d.On || d.Level != 2 ||
		len(d.People) != 1 || d.People[0].Phone != "13800000000" || d.Labels["district"] != "xuhui" || d.Head.Name != "陈" {
		t.Errorf("decoded %+v", d)
	}
	if p := d.People[0]; p.At != (Pos{8, 5}) || p.Where["phone"] != (Pos{9, 12}) {
		t.Errorf("positions %v %v", p.At, p.Where)
	}
}

func TestDecodeReportsEveryProblemWhereItIs(t *testing.T) {
	src := `title: [a]
wait: soon
count: many
on: yes please
level: medium
colour: red
people:
  - name: 张伟
    mobile: 1
  - just a string
labels: [x]
head: {name: a, name: b}
`
	var d doc
	err := Decode("n.yaml", []byte(src), 1<<20, &d).Err()
	if err == nil {
		t.Fatal("no errors")
	}
	want := []string{
		`n.yaml:1:8: title: want a single value, got a list`,
		`n.yaml:2:7: wait: "soon": want a duration`,
		`n.yaml:3:8: count: "many": want a whole number`,
		`n.yaml:4:5: on: "yes please": want true or false`,
		`n.yaml:5:8: level: want low or high`,
		`n.yaml:6:1: unknown field "colour"`,
		`n.yaml:9:5: people[0]: unknown field "mobile" (want one of name, phone)`,
		`n.yaml:10:5: people[1]: want a mapping, got a single value`,
		`n.yaml:11:9: labels: want a mapping, got a list`,
		`n.yaml:12:17: head: "name" given twice`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
}

func TestDecodeBounds(t *testing.T) {
	var d doc
	for name, tc := range map[string]struct {
		src  string
		max  int
		want string
	}{
		"too large": {"title: x\n", 4, "larger than 4 bytes"},
		"alias":     {"title: &t x\nlabels: {a: *t}\n", 1 << 20, "aliases"},
		"too deep":  {"labels: " + strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2) + "\n", 1 << 20, "nested more than"},
		"syntax":    {"title: x\n  - y: [\n", 1 << 20, "malformed YAML"},
		"empty":     {"", 1 << 20, "empty"},
		"two docs":  {"title: a\n---\ntitle: b\n", 1 << 20, "malformed YAML"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Decode("n.yaml", []byte(tc.src), tc.max, &d).Err()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("title: x\npeople: [{name: a}]\n")
	f.Add("labels: {a: *b}")
	f.Add("wait: 1h\nlevel: low\nhead: ~\n")
	f.Fuzz(func(t *testing.T, src string) {
		var d doc
		errs := Decode("f.yaml", []byte(src), 1<<16, &d)
		for _, e := range errs {
			if e.Err == nil || e.Error() == "" {
				t.Fatalf("empty error %#v", e)
			}
		}
	})
}

func TestOneValueIsAListOfOne(t *testing.T) {
	var d struct {
		Dept  []string `yaml:"dept"`
		Depts []string `yaml:"depts"`
	}
	if err := Decode("n.yaml", []byte("dept: gas\ndepts: [gas, fire]\n"), 1<<10, &d).Err(); err != nil {
		t.Fatal(err)
	}
	if len(d.Dept) != 1 || d.Dept[0] != "gas" || len(d.Depts) != 2 {
		t.Errorf("decoded %+v", d)
	}
}
