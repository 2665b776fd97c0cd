package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// fixtures returns cases in every state the table tells apart.
func fixtures(t *testing.T) map[string]*cityhubv1.Case {
	t.Helper()
	at := t0.Add(time.Minute)
	build := func(steps ...func(c *cityhubv1.Case)) *cityhubv1.Case {
		c := dispatchedCase(t)
		for _, s := range steps {
			s(c)
		}
		return c
	}
	do := func(by Actor, req Request) func(c *cityhubv1.Case) {
		return func(c *cityhubv1.Case) { must(t, c, req, by, at) }
	}
	accept := func(by Actor) func(*cityhubv1.Case) { return do(by, Request{Action: Accept}) }
	handle := func(by Actor) func(*cityhubv1.Case) { return do(by, Request{Action: Handle, Note: "done"}) }
	manual := &cityhubv1.Case{Id: "xuhui-01jz2g93z0ptff52h35j58yj82", District: "xuhui", Title: "热线"}
	if _, err := New(manual, nil, dispatcher, t0, nil); err != nil {
		t.Fatal(err)
	}
	return map[string]*cityhubv1.Case{
		"new":                  manual,
		"returned":             build(do(water, Request{Action: Return, Note: "not ours"})),
		"dispatched":           build(),
		"assist signed":        build(accept(traffic)),
		"lead signed":          build(accept(water)),
		"both signed":          build(accept(water), accept(traffic)),
		"lead suspended":       build(accept(water), accept(traffic), do(water, Request{Action: Suspend, Note: "rain"})),
		"extension pending":    build(accept(water), do(water, Request{Action: RequestExtension, Note: "parts", ExtendBy: time.Hour})),
		"lead handled":         build(accept(water), accept(traffic), handle(water)),
		"handled":              build(accept(water), accept(traffic), handle(water), handle(traffic)),
		"closed":               build(accept(water), accept(traffic), handle(water), handle(traffic), do(dispatcher, Request{Action: Verify, Pass: &yes})),
		"cancelled":            build(do(dispatcher, Request{Action: Cancel, Note: "false alarm"})),
		"with the city centre": build(do(dispatcher, Request{Action: Escalate, Note: "a"}), do(dispatcher, Request{Action: Escalate, Note: "b"})),
	}
}

// valid returns a well-formed request for row t on the part of dept,
// written independently of Allowed's own probe.
func valid(t Transition, dept string) Request {
	req := Request{Action: t.Action, Department: dept, Note: "because"}
	switch t.Action {
	case Verify:
		pass := t.Outcome == "pass"
		req.Pass = &pass
	case Dispatch:
		req.Dispatch = &cityhubv1.DispatchSpec{Lead: "gas", Assist: []string{"water-affairs"}}
	case Merge:
		req.Into = "xuhui-01jz2g93z0ptff52h35j58yj8z"
	case RequestExtension:
		req.ExtendBy = 30 * time.Minute
	}
	return req
}

func isForbidden(err error) bool {
	return errors.Is(err, ErrForbidden) || errors.Is(err, ErrForbiddenTransition)
}

// TestAllowedMatchesApply checks Allowed against Apply for every fixture,
// actor, row and part: what Allowed lists succeeds, and what it leaves out
// is refused as forbidden (never as a malformed request).
func TestAllowedMatchesApply(t *testing.T) {
	actors := []Actor{commander, dispatcher, water, traffic, gas, viewer}
	for name, c := range fixtures(t) {
		for _, by := range actors {
			t.Run(name+"/"+by.Subject, func(t *testing.T) {
				before := proto.CloneOf(c)
				opts := Allowed(c, by)
				if !proto.Equal(before, c) {
					t.Fatal("Allowed changed the case")
				}
				now := c.GetUpdatedAt().AsTime().Add(time.Minute)
				listed := map[string]bool{}
				for _, o := range opts {
					key := fmt.Sprint(o.Action, "/", o.Outcome, "/", o.Department)
					listed[key] = true
					row, err := lookup(valid(Transition{Action: o.Action, Outcome: o.Outcome}, ""))
					if err != nil {
						t.Fatalf("option %s: %v", key, err)
					}
					if o.NeedsNote != row.NeedsNote || !slices.Equal(o.Needs, needs[o.Action]) {
						t.Errorf("option %s: needs_note %v needs %v", key, o.NeedsNote, o.Needs)
					}
					if _, err := Apply(proto.CloneOf(c), valid(row, o.Department), by, now); err != nil {
						t.Errorf("option %s listed but refused: %v", key, err)
					}
				}
				for _, row := range table {
					if row.Action == Create {
						continue
					}
					for _, dept := range testParts(c, row, by) {
						key := fmt.Sprint(row.Action, "/", row.Outcome, "/", dept)
						if listed[key] {
							continue
						}
						if _, err := Apply(proto.CloneOf(c), valid(row, dept), by, now); !isForbidden(err) {
							t.Errorf("%s left out, but Apply answered %v", key, err)
						}
					}
				}
			})
		}
	}
}

// testParts returns the departments to try row on: every part of the case
// and the actor's own department for part actions, "" otherwise.
func testParts(c *cityhubv1.Case, row Transition, by Actor) []string {
	if !row.OnPart {
		return []string{""}
	}
	var out []string
	for _, p := range c.GetParts() {
		out = append(out, p.GetDepartment())
	}
	if by.Dept != "" && !slices.Contains(out, by.Dept) {
		out = append(out, by.Dept)
	}
	return out
}

// TestAllowedByRole spells out what each role is offered in typical states.
func TestAllowedByRole(t *testing.T) {
	f := fixtures(t)
	summary := func(opts []Option) string {
		var parts []string
		for _, o := range opts {
			s := string(o.Action)
			if o.Outcome != "" {
				s += ":" + o.Outcome
			}
			if o.Department != "" {
				s += "@" + o.Department
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	for _, tt := range []struct {
		fixture string
		by      Actor
		want    string
	}{
		{"dispatched", water, "accept@water-affairs return@water-affairs comment"},
		{"dispatched", traffic, "accept@traffic-police return@traffic-police comment"},
		{"dispatched", gas, ""},
		{"dispatched", viewer, ""},
		{"dispatched", dispatcher, "cancel merge comment escalate"},
		{"new", dispatcher, "dispatch cancel merge comment escalate"},
		{"lead signed", water, "handle@water-affairs suspend@water-affairs request_extension@water-affairs comment"},
		{"lead signed", traffic, "accept@traffic-police comment"},
		{"lead suspended", water, "resume@water-affairs request_extension@water-affairs comment"},
		{"extension pending", dispatcher, "grant_extension@water-affairs refuse_extension@water-affairs cancel merge comment escalate"},
		{"extension pending", water, "handle@water-affairs suspend@water-affairs comment"},
		{"handled", dispatcher, "verify:pass verify:fail cancel merge comment escalate"},
		{"handled", water, "comment"},
		{"closed", dispatcher, "comment"},
		{"closed", commander, "comment"},
		{"with the city centre", dispatcher, "cancel merge comment"},
		{"both signed", commander, "handle@water-affairs handle@traffic-police suspend@water-affairs suspend@traffic-police " +
			"request_extension@water-affairs request_extension@traffic-police cancel merge comment escalate"},
	} {
		if got := summary(Allowed(f[tt.fixture], tt.by)); got != tt.want {
			t.Errorf("%s, %s: %q\n want %q", tt.fixture, tt.by.Subject, got, tt.want)
		}
	}
	// The verify options carry what the console needs to draw them.
	for _, o := range Allowed(f["handled"], dispatcher) {
		if o.Action == Verify && o.Outcome == "fail" && !o.NeedsNote {
			t.Error("verify:fail does not ask for a note")
		}
	}
	if opts := Allowed(f["new"], dispatcher); opts[0].Action != Dispatch || !slices.Contains(opts[0].Needs, "lead") {
		t.Errorf("dispatch option %+v", opts[0])
	}
}
