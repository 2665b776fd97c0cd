package cityhubv1

import (
	"fmt"
	"strings"
)

// Name returns the severity as rule packs and the JSON API spell it:
// "minor", "moderate", "severe" or "extreme"; "" when unspecified.
func (s Severity) Name() string {
	if s <= Severity_SEVERITY_UNSPECIFIED || int(s) >= len(severityNames) {
		return ""
	}
	return severityNames[s]
}

var severityNames = [...]string{"", "minor", "moderate", "severe", "extreme"}

// ParseSeverity parses a severity name as Name returns it.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if i > 0 && n == name {
			return Severity(i), nil
		}
	}
	return Severity_SEVERITY_UNSPECIFIED, fmt.Errorf("unknown severity %q (want one of %s)", name, strings.Join(severityNames[1:], ", "))
}

// Name returns the case status as the JSON API spells it: "new",
// "dispatched", "accepted", "handled", "closed" or "cancelled".
func (s CaseStatus) Name() string {
	if s <= CaseStatus_CASE_STATUS_UNSPECIFIED || int(s) >= len(statusNames) {
		return ""
	}
	return statusNames[s]
}

var statusNames = [...]string{"", "new", "dispatched", "accepted", "handled", "closed", "cancelled"}

// ParseCaseStatus parses a status name as Name returns it.
func ParseCaseStatus(name string) (CaseStatus, error) {
	for i, n := range statusNames {
		if i > 0 && n == name {
			return CaseStatus(i), nil
		}
	}
	return CaseStatus_CASE_STATUS_UNSPECIFIED, fmt.Errorf("unknown case status %q (want one of %s)", name, strings.Join(statusNames[1:], ", "))
}

// Open reports whether a case in this status still needs work.
func (s CaseStatus) Open() bool {
	return s != CaseStatus_CASE_STATUS_CLOSED && s != CaseStatus_CASE_STATUS_CANCELLED && s != CaseStatus_CASE_STATUS_UNSPECIFIED
}

// Name returns "firing", "resolved" or "pending"; "" when unspecified.
func (s AlertState) Name() string {
	switch s {
	case AlertState_ALERT_STATE_FIRING:
		return "firing"
	case AlertState_ALERT_STATE_RESOLVED:
		return "resolved"
	case AlertState_ALERT_STATE_PENDING:
		return "pending"
	}
	return ""
}
