package live

import (
	"slices"
	"strings"
	"testing"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

func TestDecodeFrame(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     request
		wantErr  string
	}{
		{name: "both streams", in: subscribeAll, want: request{filter: filter{alerts: true, cases: true}}},
		{name: "full filter", in: `{"type":"subscribe","streams":["cases","cases"],"filter":{"districts":["xuhui","xuhui"],"departments":["water-affairs"],"min_severity":"moderate"}}`,
			want: request{filter: filter{cases: true, districts: []string{"xuhui"}, departments: []string{"water-affairs"}, minSeverity: cityhubv1.Severity_SEVERITY_MODERATE}}},
		{name: "empty filter lists", in: `{"type":"subscribe","streams":["alerts"],"filter":{"districts":[],"departments":[],"min_severity":""}}`,
			want: request{filter: filter{alerts: true}}},
		{name: "unsubscribe", in: `{"type":"unsubscribe"}`, want: request{unsubscribe: true}},
		{name: "unsubscribe with streams", in: `{"type":"unsubscribe","streams":["alerts"]}`, wantErr: "no streams"},
		{name: "null", in: `null`, wantErr: `missing "type"`},
		{name: "empty", in: ``, wantErr: "incomplete"},
		{name: "empty district", in: `{"type":"subscribe","streams":["alerts"],"filter":{"districts":[""]}}`, wantErr: "filter.districts"},
		{name: "long district", in: `{"type":"subscribe","streams":["alerts"],"filter":{"districts":["` + strings.Repeat("d", 129) + `"]}}`, wantErr: "filter.districts"},
		{name: "long type is clipped", in: `{"type":"` + strings.Repeat("t", 500) + `"}`, wantErr: "…"},
		{name: "states of both streams", in: `{"type":"subscribe","streams":["alerts","cases"],"filter":{"states":["firing","new","dispatched","firing"]}}`,
			want: request{filter: filter{alerts: true, cases: true, alertStates: []string{"firing"}, caseStates: []string{"new", "dispatched"}}}},
		{name: "unknown state", in: `{"type":"subscribe","streams":["cases"],"filter":{"states":["open"]}}`, wantErr: `unknown state "open"`},
		{name: "severity wrong type", in: `{"type":"subscribe","streams":["alerts"],"filter":{"min_severity":3}}`, wantErr: `"filter.min_severity" must be a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeFrame([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.unsubscribe != tc.want.unsubscribe || got.filter.alerts != tc.want.filter.alerts || got.filter.cases != tc.want.filter.cases ||
				!slices.Equal(got.filter.districts, tc.want.filter.districts) || !slices.Equal(got.filter.departments, tc.want.filter.departments) ||
				got.filter.minSeverity != tc.want.filter.minSeverity ||
				!slices.Equal(got.filter.alertStates, tc.want.filter.alertStates) || !slices.Equal(got.filter.caseStates, tc.want.filter.caseStates) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestInScope(t *testing.T) {
	c := caseItem(kase("c", 1, "xuhui", "water-affairs", "traffic-police"))
	a := alertItem(alert("a", 1, "pudong", cityhubv1.Severity_SEVERITY_MINOR, "sanitation"))
	for _, tc := range []struct {
		name       string
		p          auth.Principal
		case_, alt bool
	}{
		{"commander", auth.Principal{Role: auth.RoleCommander}, true, true},
		{"viewer, no districts", auth.Principal{Role: auth.RoleViewer}, true, true},
		{"viewer in xuhui", auth.Principal{Role: auth.RoleViewer, Districts: []string{"xuhui"}}, true, false},
		{"dispatcher in pudong", auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"pudong"}}, false, true},
		{"lead department", auth.Principal{Role: auth.RoleDepartment, Dept: "water-affairs"}, true, false},
		{"assisting department", auth.Principal{Role: auth.RoleDepartment, Dept: "traffic-police"}, true, false},
		{"department named by the alert", auth.Principal{Role: auth.RoleDepartment, Dept: "sanitation"}, false, true},
		{"department without a dept", auth.Principal{Role: auth.RoleDepartment}, false, false},
		{"source", auth.Principal{Role: auth.RoleSource, Sources: []string{"iot"}}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inScope(&tc.p, c); got != tc.case_ {
				t.Errorf("case in scope = %v", got)
			}
			if got := inScope(&tc.p, a); got != tc.alt {
				t.Errorf("alert in scope = %v", got)
			}
		})
	}
}

func TestFilterStates(t *testing.T) {
	f := filter{alerts: true, cases: true, caseStates: []string{"new", "dispatched"}}
	open := caseItem(kase("c", 1, "xuhui", "w"))
	closed := caseItem(&cityhubv1.Case{Id: "c", Version: 2, Status: cityhubv1.CaseStatus_CASE_STATUS_CLOSED, District: "xuhui"})
	firing := alertItem(alert("a", 1, "xuhui", cityhubv1.Severity_SEVERITY_MINOR, ""))
	if !f.matches(open) || f.matches(closed) {
		t.Error("case states not applied")
	}
	if !f.matches(firing) {
		t.Error("case states filtered an alert")
	}
	f.alertStates = []string{"resolved"}
	if f.matches(firing) {
		t.Error("alert states not applied")
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker()
	c := func(v int64, lead string, st cityhubv1.CaseStatus) item {
		k := kase("c", v, "xuhui", lead)
		k.Status = st
		return caseItem(k)
	}
	const dispatched, closed = cityhubv1.CaseStatus_CASE_STATUS_DISPATCHED, cityhubv1.CaseStatus_CASE_STATUS_CLOSED
	if _, ok := tr.advance(c(1, "w", dispatched)); ok {
		t.Error("a first change has a previous state")
	}
	if prev, ok := tr.advance(c(2, "t", dispatched)); !ok || prev.version != 1 || prev.depts[0] != "w" {
		t.Errorf("advance to v2: prev %+v %v, want v1 of w", prev, ok)
	}
	if _, ok := tr.advance(c(2, "t", dispatched)); ok {
		t.Error("a redelivered change has a previous state")
	}
	tr.seed([]item{c(9, "x", dispatched)}) // known: a snapshot does not overwrite the deltas
	if prev, ok := tr.advance(c(3, "t", closed)); !ok || prev.version != 2 {
		t.Errorf("advance to v3: prev %+v %v, want v2", prev, ok)
	}
	if tr.len() != 0 {
		t.Error("a closed case is still tracked")
	}
	tr.seed([]item{c(4, "w", dispatched), caseItem(&cityhubv1.Case{Id: "shut", Version: 1, Status: closed})})
	if prev, ok := tr.advance(c(5, "t", dispatched)); !ok || prev.version != 4 {
		t.Errorf("after a seed: prev %+v %v, want the seeded v4", prev, ok)
	}
	if tr.len() != 1 {
		t.Errorf("tracking %d items, want 1 (closed ones are not seeded)", tr.len())
	}
}

// FuzzDecodeFrame feeds the client-frame decoder arbitrary bytes: it must
// never panic, must keep its error messages short whatever the input, and
// must return only well-formed requests.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		subscribeAll,
		`{"type":"unsubscribe"}`,
		`{"type":"subscribe","streams":["cases"],"filter":{"districts":["xuhui"],"departments":["water-affairs"],"min_severity":"severe"}}`,
		`{"type":"subscribe","streams":["alerts"],"filter":{"min_severity":"huge"}}`,
		`{"type":"publish"}`,
		`{"type":"subscribe","streams":[1]}`,
		`[]`, `null`, `{`, `"x"`, "\xff",
		// Names a token or filter may not carry, and text that is not UTF-8.
		`{"type":"subscribe","streams":["cases"],"filter":{"departments":["ghost-bureau"],"districts":["atlantis"]}}`,
		"{\"type\":\"subscribe\",\"streams\":[\"cases\"],\"filter\":{\"districts\":[\"xu\xffhui\"]}}",
		`{"type":"subscribe","streams":["alerts"],"filter":{"districts":["\ud800"]}}`,
		subscribeAll + subscribeAll,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeFrame(b)
		if err != nil {
			if n := len(err.Error()); n > 256 {
				t.Fatalf("error message of %d bytes", n)
			}
			return
		}
		if r.unsubscribe {
			return
		}
		if !r.filter.alerts && !r.filter.cases {
			t.Fatal("a subscription with no stream")
		}
		if r.filter.minSeverity < 0 || r.filter.minSeverity > cityhubv1.Severity_SEVERITY_EXTREME {
			t.Fatalf("severity %v", r.filter.minSeverity)
		}
		for _, v := range append(slices.Clone(r.filter.districts), r.filter.departments...) {
			if v == "" || len(v) > maxFilterValue {
				t.Fatalf("filter value %q", v)
			}
		}
	})
}
