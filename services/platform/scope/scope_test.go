package scope

import (
	"slices"
	"testing"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
)

func TestCaseAndAlertByRole(t *testing.T) {
	c := &cityhubv1.Case{District: "xuhui", Lead: "water-affairs", Assist: []string{"traffic-police"},
		Parts: []*cityhubv1.Part{{Department: "water-affairs"}, {Department: "drainage"}}}
	a := &cityhubv1.Alert{District: "xuhui", Dispatch: &cityhubv1.DispatchSpec{Lead: "water-affairs", Assist: []string{"traffic-police"}}}
	for _, tc := range []struct {
		name      string
		p         auth.Principal
		seesCase  bool
		seesAlert bool
	}{
		{"commander", auth.Principal{Role: auth.RoleCommander}, true, true},
		{"dispatcher of xuhui", auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui"}}, true, true},
		{"dispatcher of pudong", auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"pudong"}}, false, false},
		{"dispatcher of every district", auth.Principal{Role: auth.RoleDispatcher}, true, true},
		{"viewer of pudong", auth.Principal{Role: auth.RoleViewer, Districts: []string{"pudong"}}, false, false},
		{"viewer of every district", auth.Principal{Role: auth.RoleViewer}, true, true},
		{"the lead", auth.Principal{Role: auth.RoleDepartment, Dept: "water-affairs"}, true, true},
		{"an assist", auth.Principal{Role: auth.RoleDepartment, Dept: "traffic-police"}, true, true},
		{"a part only", auth.Principal{Role: auth.RoleDepartment, Dept: "drainage"}, true, false},
		{"another department", auth.Principal{Role: auth.RoleDepartment, Dept: "gas"}, false, false},
		{"a department token without a department", auth.Principal{Role: auth.RoleDepartment}, false, false},
		{"a source", auth.Principal{Role: auth.RoleSource, Sources: []string{"iot"}}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Case(&tc.p, c); got != tc.seesCase {
				t.Errorf("Case = %v, want %v", got, tc.seesCase)
			}
			// Sees over the case's departments is the same rule.
			if got := Sees(&tc.p, c.GetDistrict(), Departments(c)); got != tc.seesCase {
				t.Errorf("Sees(case) = %v, want %v", got, tc.seesCase)
			}
			if got := Alert(&tc.p, a); got != tc.seesAlert {
				t.Errorf("Alert = %v, want %v", got, tc.seesAlert)
			}
		})
	}
	if got := Departments(c); !slices.Equal(got, []string{"water-affairs", "traffic-police", "drainage"}) {
		t.Errorf("Departments = %v", got)
	}
}

func TestNarrow(t *testing.T) {
	for _, tc := range []struct {
		name          string
		p             auth.Principal
		districts     []string
		dept          string
		wantDistricts []string
		wantDept      string
		ok            bool
	}{
		{"commander asks anything", auth.Principal{Role: auth.RoleCommander}, []string{"pudong"}, "gas", []string{"pudong"}, "gas", true},
		{"department asks nothing", auth.Principal{Role: auth.RoleDepartment, Dept: "gas"}, nil, "", nil, "gas", true},
		{"department asks another", auth.Principal{Role: auth.RoleDepartment, Dept: "gas"}, nil, "fire", nil, "", false},
		{"dispatcher asks nothing", auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui", "jingan"}}, nil, "", []string{"xuhui", "jingan"}, "", true},
		{"dispatcher asks one of its own", auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui", "jingan"}}, []string{"jingan", "pudong"}, "gas", []string{"jingan"}, "gas", true},
		{"dispatcher asks another's", auth.Principal{Role: auth.RoleDispatcher, Districts: []string{"xuhui"}}, []string{"pudong"}, "", []string{}, "", false},
		{"viewer of every district", auth.Principal{Role: auth.RoleViewer}, []string{"pudong"}, "", []string{"pudong"}, "", true},
		{"source", auth.Principal{Role: auth.RoleSource, Sources: []string{"iot"}}, nil, "", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.districts)
			ds, dept, ok := Narrow(&tc.p, in, tc.dept)
			if ok != tc.ok || (ok && (!slices.Equal(ds, tc.wantDistricts) || dept != tc.wantDept)) {
				t.Errorf("Narrow = %v %q %v, want %v %q %v", ds, dept, ok, tc.wantDistricts, tc.wantDept, tc.ok)
			}
			if !slices.Equal(in, tc.districts) {
				t.Errorf("Narrow changed its input to %v", in)
			}
		})
	}
}
