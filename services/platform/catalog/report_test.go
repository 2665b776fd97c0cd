package catalog

import (
	"strings"
	"testing"
)

const withReports = `
districts:
  - {code: xuhui, name: 徐汇区, centre: {lon: 121.43, lat: 31.18}}
departments:
  - {code: water-affairs, name: 水务局}
  - {code: city-management, name: 城管执法局}
event_types:
  - code: waterlogging
    name: 道路积水
    owner: water-affairs
    attrs: {water_depth_cm: number, camera_id: string}
    report:
      group: 防汛
      keywords: [积水, 淹水]
      attributes:
        - code: water_depth_cm
          datatype: number
          description: 积水大约多深（厘米）？
  - code: manhole_cover_missing
    name: 窨井盖缺失
    owner: city-management
    attrs: {on_carriageway: bool, kind: string, noticed: string, remarks: string}
    report:
      service_name: 井盖丢了
      description: 路上的窨井盖不见了或破损
      notice: 已受理
      attributes:
        - code: remarks
          datatype: text
          order: 9
          description: 还有什么要说明的？
        - code: on_carriageway
          datatype: singlevaluelist
          required: true
          description: 井口在机动车道上吗？
          values: [{key: "true", name: 是}, {key: "false", name: 否}]
        - code: kind
          datatype: multivaluelist
          description: 井盖是什么用途的？
          values: [{key: rain, name: 雨水}, {key: sewage, name: 污水}]
        - code: noticed
          datatype: datetime
          order: 4
          description: 什么时候发现的？
  - code: rainfall
    name: 降雨监测
    owner: water-affairs
    attrs: {rain_mm_h: number}
`

func TestReportGood(t *testing.T) {
	c, err := Parse([]byte(withReports))
	if err != nil {
		t.Fatal(err)
	}
	rep := c.Reportable()
	if len(rep) != 2 || rep[0].Code != "waterlogging" || rep[1].Code != "manhole_cover_missing" {
		t.Fatalf("Reportable = %v", rep)
	}
	if got := rep[0].Report.ServiceName; got != "道路积水" {
		t.Errorf("default service name = %q, want the type's name", got)
	}
	if got := rep[1].Report.ServiceName; got != "井盖丢了" {
		t.Errorf("service name = %q", got)
	}
	// Orders default to the position in the list, and questions come
	// sorted by order.
	var order []string
	for _, a := range rep[1].Report.Attributes {
		order = append(order, a.Code)
	}
	if strings.Join(order, " ") != "on_carriageway kind noticed remarks" {
		t.Errorf("questions in order %v", order)
	}
	a, ok := rep[1].Report.Attribute("kind")
	if !ok || a.Order != 3 || !a.Datatype.IsList() {
		t.Errorf("kind = %+v, %v", a, ok)
	}
	if v, ok := a.Value("sewage"); !ok || v.Name != "污水" {
		t.Errorf("value sewage = %+v, %v", v, ok)
	}
	if _, ok := a.Value("gas"); ok {
		t.Error("found a value that is not there")
	}
	if _, ok := rep[1].Report.Attribute("plate"); ok {
		t.Error("found a question that is not there")
	}
}

func TestReportBad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []string // pairs: replace the first with the second
		want  string
	}{
		{"undeclared attribute", []string{"code: water_depth_cm\n", "code: depth\n"}, `attribute 1 (depth): not an attribute the event type declares`},
		{"wrong datatype", []string{"datatype: number", "datatype: string"}, "datatype string cannot fill a number attribute"},
		{"unknown datatype", []string{"datatype: number", "datatype: float"}, `datatype "float"`},
		{"bool from other keys", []string{`{key: "true", name: 是}`, `{key: "yes", name: 是}`}, "cannot fill a bool attribute unless its value keys are true and false"},
		{"datetime for a bool", []string{"datatype: singlevaluelist\n          required: true", "datatype: datetime\n          required: true"}, "datatype datetime cannot fill a bool attribute"},
		{"list without values", []string{`values: [{key: rain, name: 雨水}, {key: sewage, name: 污水}]`, ""}, "needs values to choose from"},
		{"values on a number", []string{"description: 积水大约多深（厘米）？", "description: 积水大约多深（厘米）？\n          values: [{key: a, name: b}]"}, "only singlevaluelist and multivaluelist have values"},
		{"duplicate key", []string{`{key: sewage, name: 污水}`, `{key: rain, name: 污水}`}, `value key "rain" listed twice`},
		{"comma in a multi key", []string{`{key: sewage, name: 污水}`, `{key: "a,b", name: 污水}`}, `value key "a,b"`},
		{"value without a name", []string{`{key: sewage, name: 污水}`, `{key: sewage}`}, `value "sewage": no name`},
		{"duplicate order", []string{"order: 9", "order: 4"}, `order 4 is also the order of "remarks"`},
		{"negative order", []string{"order: 9", "order: -2"}, "order -2: want a positive number"},
		{"no question", []string{"description: 积水大约多深（厘米）？", "datatype_description: 厘米"}, "no description"},
		{"reserved code", []string{
			"attrs: {water_depth_cm: number, camera_id: string}", "attrs: {water_depth_cm: number, district: string}",
			"code: water_depth_cm\n          datatype: number", "code: district\n          datatype: string",
		}, `"district" is asked of every reportable type by the Open311 adapter itself`},
		{"keyword with a comma", []string{"keywords: [积水, 淹水]", `keywords: ["积水,淹水"]`}, `keyword "积水,淹水"`},
		{"twice", []string{"        - code: noticed\n", "        - code: remarks\n"}, `attribute "remarks" listed twice`},
		{"unknown field", []string{"group: 防汛", "group: 防汛\n      colour: blue"}, "field colour not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := withReports
			for i := 0; i+1 < len(tc.edits); i += 2 {
				if !strings.Contains(doc, tc.edits[i]) {
					t.Fatalf("the test catalog has no %q", tc.edits[i])
				}
				doc = strings.Replace(doc, tc.edits[i], tc.edits[i+1], 1)
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestRepositoryCatalogReports checks the city's own catalog: the types
// citizens may report, and that emergencies are not among them (those go
// to 110, 119 and 122, not to a non-emergency report).
func TestRepositoryCatalogReports(t *testing.T) {
	c, err := Load("../../../rules/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rep := map[string]*EventType{}
	for _, et := range c.Reportable() {
		rep[et.Code] = et
	}
	for _, code := range []string{"waterlogging", "drain_blocked", "manhole_cover_missing", "illegal_parking", "noise_complaint", "garbage_overflow"} {
		if rep[code] == nil {
			t.Errorf("%s is not reportable", code)
		}
	}
	for _, code := range []string{"fire_report", "traffic_accident", "gas_leak", "smoke_detected", "rainfall"} {
		if rep[code] != nil {
			t.Errorf("%s is reportable", code)
		}
	}
	if et := rep["manhole_cover_missing"]; et != nil {
		if a, ok := et.Report.Attribute("on_carriageway"); !ok || a.Datatype != DatatypeSingleValueList {
			t.Errorf("manhole_cover_missing asks on_carriageway as %+v", a)
		}
	}
}
