package cityhubv1

import "testing"

func TestSeverityNamesRoundTrip(t *testing.T) {
	for v := range Severity_name {
		s := Severity(v)
		if s == Severity_SEVERITY_UNSPECIFIED {
			continue
		}
		got, err := ParseSeverity(s.Name())
		if err != nil || got != s {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", s.Name(), got, err, s)
		}
	}
	if _, err := ParseSeverity("catastrophic"); err == nil {
		t.Error("ParseSeverity accepted an unknown name")
	}
}

func TestCaseStatusNamesRoundTrip(t *testing.T) {
	for v := range CaseStatus_name {
		s := CaseStatus(v)
		if s == CaseStatus_CASE_STATUS_UNSPECIFIED {
			continue
		}
		got, err := ParseCaseStatus(s.Name())
		if err != nil || got != s {
			t.Errorf("ParseCaseStatus(%q) = %v, %v; want %v", s.Name(), got, err, s)
		}
	}
	if CaseStatus_CASE_STATUS_CLOSED.Open() || !CaseStatus_CASE_STATUS_NEW.Open() {
		t.Error("Open is wrong for closed or new")
	}
}
