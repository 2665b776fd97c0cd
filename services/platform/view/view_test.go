package view

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestFromCaseWorkflowFields checks the JSON names the console reads for
// deadlines, suspension, extensions, merges, arbitration and escalation.
func TestFromCaseWorkflowFields(t *testing.T) {
	t0 := time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)
	ts := timestamppb.New(t0)
	c := &cityhubv1.Case{
		Id: "xuhui-1", Status: cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED, District: "xuhui",
		Sla: &cityhubv1.Sla{Handle: durationpb.New(21 * time.Hour), HandleWorking: true, CaseClass: "standard"},
		Parts: []*cityhubv1.Part{{
			Department: "water-affairs", Lead: true, Status: cityhubv1.CaseStatus_CASE_STATUS_ACCEPTED,
			HandleDeadline: &cityhubv1.Deadline{DueAt: ts, WarnAt: ts, FinalAt: ts, Fired: 2, Working: true, Allowed: durationpb.New(21 * time.Hour)},
			SuspendedAt:    ts, SuspendReason: "rain", SuspendedTotal: durationpb.New(time.Hour),
			Extension:  &cityhubv1.Extension{State: "pending", ExtendBy: durationpb.New(7 * time.Hour), Reason: "parts"},
			ReworkNote: "still wet",
		}},
		MergedInto: "xuhui-2", Merged: []string{"xuhui-3"}, Arbitration: true, ArbitrationReason: "returned by a, b",
		ReturnedBy: []string{"a", "b"}, ReworkCount: 1, EscalationLevel: 2, Warned: true, Overdue: true,
	}
	b, err := json.Marshal(FromCase(c))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"sla":{"handle":"21h0m0s","case_class":"standard","handle_in":"working"}`,
		`"handle_deadline":{"due_at":"2025-07-01T08:00:00Z","warn_at":"2025-07-01T08:00:00Z","final_at":"2025-07-01T08:00:00Z","state":"missed","in":"working","allowed":"21h0m0s"}`,
		`"suspended":true`, `"suspend_reason":"rain"`, `"suspended_total":"1h0m0s"`,
		`"extension":{"state":"pending","extend_by":"7h0m0s","reason":"parts"}`, `"rework_note":"still wet"`,
		`"merged_into":"xuhui-2"`, `"merged":["xuhui-3"]`, `"arbitration":true`, `"arbitration_reason":"returned by a, b"`,
		`"returned_by":["a","b"]`, `"rework_count":1`, `"escalation_level":2`, `"escalated_to":"city-centre"`,
		`"warned":true`, `"overdue":true`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	e := FromAudit(&cityhubv1.AuditEntry{Action: "return", Effect: "flagged for arbitration"})
	if e.Effect != "flagged for arbitration" {
		t.Errorf("effect %q", e.Effect)
	}
	if v, _ := json.Marshal(FromCase(&cityhubv1.Case{Id: "x"})); !strings.Contains(string(v), `"escalation_level":0`) || strings.Contains(string(v), "escalated_to") {
		t.Errorf("a case at the bottom of the ladder: %s", v)
	}
}
