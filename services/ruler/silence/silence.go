// Package silence keeps the silences operators set at run time: roadworks
// on a street, a gauge under repair, a rule too noisy tonight. A silence
// mutes the alerts its matchers select from its start to its end, as a
// pack's silences do; it is created, listed and expired through the API
// (Service), recorded on Kafka (city.silences.v1, keyed by id, every
// version) and kept in Redis (Store), from which the rulers read what
// mutes alerts now. Redis can be rebuilt from the record (Rebuild).
//
// Who may silence what follows the roles: a commander anything, a
// dispatcher alerts of its districts (the silence must name them), a
// department the rules of the packs it owns. A silence over every alert
// must be asked for with force, by a commander, and is logged.
package silence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/ruler/rulepack"
)

// Errors of the package, by meaning.
var (
	// ErrNotFound means there is no silence with the given id.
	ErrNotFound = errors.New("no such silence")
	// ErrForbidden means the caller may not set or end the silence.
	ErrForbidden = errors.New("forbidden")
)

// Limits of a request.
const (
	MaxBodyBytes    = 64 << 10
	MaxCommentBytes = 1024
	maxValueBytes   = 256
)

// Values are the values a matcher accepts; JSON gives one as a string or
// several as a list.
type Values []string

// UnmarshalJSON takes "a" or ["a", "b"].
func (v *Values) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`"`)) {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Values{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*v = list
	return nil
}

// Request is what POST /v1/silences takes.
type Request struct {
	// Matchers select the alerts: rule ("pack/id"), pack, severity, and
	// group labels (district, street, grid, type, source, attrs.NAME).
	Matchers map[string]Values `json:"matchers"`
	// StartsAt is when the silence starts; now when absent or past.
	StartsAt *time.Time `json:"starts_at,omitempty"`
	// EndsAt is when it ends; required, later than now and than StartsAt.
	EndsAt  *time.Time `json:"ends_at,omitempty"`
	Comment string     `json:"comment"`
	// Force asks for a silence with no matchers, over every alert.
	Force bool `json:"force,omitempty"`
}

// Problem is one thing wrong with a request, naming the field.
type Problem struct {
	Field string `json:"field"`
	// Reason names the problem for clients that say it in their own words
	// (the console says it in Chinese); Value and Limit are what it is
	// about, when it is about a value or a bound.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Value   string `json:"value,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// Problems is every problem of a request.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Field + ": " + p.Message
	}
	return strings.Join(lines, "; ")
}

// Known is what matchers are checked against: the rules and packs that
// run, each with the department that owns it, and the catalog's
// districts. A matcher on a rule, pack or district nobody knows would
// match nothing, and is refused.
type Known struct {
	Rules     map[string]string // "pack/id" → owner
	Packs     map[string]string // pack → owner
	Districts map[string]bool
}

// KnownOf returns what packs and cat make known.
func KnownOf(packs []*rulepack.Pack, cat *catalog.Catalog) Known {
	k := Known{Rules: map[string]string{}, Packs: map[string]string{}, Districts: map[string]bool{}}
	for _, p := range packs {
		k.Packs[p.Name] = p.Owner
		for _, r := range p.Rules {
			k.Rules[r.Name()] = p.Owner
		}
	}
	if cat != nil {
		for _, d := range cat.DistrictCodes() {
			k.Districts[d] = true
		}
	}
	return k
}

// check returns the problems of req as of now, with its matchers in the
// form a silence keeps them.
func (req *Request) check(k Known, now time.Time) (rulepack.Matchers, Problems) {
	var ps Problems
	add := func(p Problem, format string, args ...any) {
		p.Message = fmt.Sprintf(format, args...)
		ps = append(ps, p)
	}
	m := rulepack.Matchers{}
	if len(req.Matchers) > rulepack.MaxMatchers {
		add(Problem{Field: "matchers", Reason: "too_many", Limit: rulepack.MaxMatchers}, "more than %d matchers", rulepack.MaxMatchers)
	}
	for _, name := range slices.Sorted(maps.Keys(req.Matchers)) {
		field := "matchers." + name
		values := req.Matchers[name]
		if name != "rule" && name != "pack" && name != "severity" && !rulepack.ValidLabel(name) {
			add(Problem{Field: field, Reason: "unknown_matcher", Value: clip(name)}, "%q cannot be matched: want rule, pack, severity, a label (district, street, grid, type, source) or attrs.NAME", clip(name))
			continue
		}
		switch {
		case len(values) == 0:
			add(Problem{Field: field, Reason: "no_values"}, "no values")
			continue
		case len(values) > rulepack.MaxMatchValues:
			add(Problem{Field: field, Reason: "too_many", Limit: rulepack.MaxMatchValues}, "more than %d values", rulepack.MaxMatchValues)
			continue
		}
		for _, v := range values {
			switch {
			case v == "":
				add(Problem{Field: field, Reason: "empty_value"}, "empty value")
			case len(v) > maxValueBytes:
				add(Problem{Field: field, Reason: "too_long", Limit: maxValueBytes}, "a value longer than %d bytes", maxValueBytes)
			case name == "rule" && k.Rules[v] == "":
				add(Problem{Field: field, Reason: "unknown_rule", Value: clip(v)}, "no rule %q runs: it would match nothing", clip(v))
			case name == "pack" && k.Packs[v] == "":
				add(Problem{Field: field, Reason: "unknown_pack", Value: clip(v)}, "no pack %q runs: it would match nothing", clip(v))
			case name == "district" && !k.Districts[v]:
				add(Problem{Field: field, Reason: "unknown_district", Value: clip(v)}, "%q is not a district of the catalog: it would match nothing", clip(v))
			case name == "severity":
				if _, err := cityhubv1.ParseSeverity(v); err != nil {
					add(Problem{Field: field, Reason: "bad_severity", Value: clip(v)}, "%v", err)
				}
			}
		}
		m[name] = slices.Compact(slices.Sorted(slices.Values(values)))
	}
	if len(req.Matchers) == 0 && !req.Force {
		add(Problem{Field: "matchers", Reason: "no_matchers"}, "a silence without matchers mutes every alert: give matchers, or force: true to mean it")
	}
	if len(req.Matchers) > 0 && req.Force {
		add(Problem{Field: "force", Reason: "force_with_matchers"}, "force is only for a silence without matchers")
	}
	starts := now
	if req.StartsAt != nil && req.StartsAt.After(now) {
		starts = *req.StartsAt
	}
	switch {
	case req.EndsAt == nil:
		add(Problem{Field: "ends_at", Reason: "required"}, "required: a silence that never ends is forgotten, not meant")
	case !req.EndsAt.After(now):
		add(Problem{Field: "ends_at", Reason: "passed", Value: req.EndsAt.Format(time.RFC3339)}, "%s has passed", req.EndsAt.Format(time.RFC3339))
	case !req.EndsAt.After(starts):
		add(Problem{Field: "ends_at", Reason: "not_after_start", Value: req.EndsAt.Format(time.RFC3339)}, "%s is not after starts_at", req.EndsAt.Format(time.RFC3339))
	case req.EndsAt.Sub(starts) > rulepack.MaxSilenceSpan:
		add(Problem{Field: "ends_at", Reason: "span_too_long", Limit: int(rulepack.MaxSilenceSpan.Hours() / 24)}, "longer than %d days", int(rulepack.MaxSilenceSpan.Hours()/24))
	}
	switch c := strings.TrimSpace(req.Comment); {
	case c == "":
		add(Problem{Field: "comment", Reason: "required"}, "required: say why, for whoever finds the alerts muted")
	case len(c) > MaxCommentBytes:
		add(Problem{Field: "comment", Reason: "too_long", Limit: MaxCommentBytes}, "longer than %d bytes", MaxCommentBytes)
	}
	return m, ps
}

// mayCreate reports why p may not set a silence with matchers m, or nil
// when it may.
func mayCreate(p *auth.Principal, m rulepack.Matchers, force bool, k Known) error {
	switch p.Role {
	case auth.RoleCommander:
		return nil
	case auth.RoleDispatcher:
		if force {
			return fmt.Errorf("%w: only a commander may silence every alert", ErrForbidden)
		}
		if len(p.Districts) == 0 {
			return nil // a dispatcher of the whole city
		}
		ds := m["district"]
		if len(ds) == 0 {
			return fmt.Errorf("%w: a dispatcher's silence must name its districts (matchers.district)", ErrForbidden)
		}
		for _, d := range ds {
			if !slices.Contains(p.Districts, d) {
				return fmt.Errorf("%w: district %q is not yours", ErrForbidden, d)
			}
		}
		return nil
	case auth.RoleDepartment:
		if force {
			return fmt.Errorf("%w: only a commander may silence every alert", ErrForbidden)
		}
		rules, packs := m["rule"], m["pack"]
		if len(rules) == 0 && len(packs) == 0 {
			return fmt.Errorf("%w: a department's silence must name the rules or packs it owns (matchers.rule or matchers.pack)", ErrForbidden)
		}
		for _, r := range rules {
			if k.Rules[r] != p.Dept {
				return fmt.Errorf("%w: rule %q is not one of your packs'", ErrForbidden, r)
			}
		}
		for _, pk := range packs {
			if k.Packs[pk] != p.Dept {
				return fmt.Errorf("%w: pack %q is not yours", ErrForbidden, pk)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: a %s may not set silences", ErrForbidden, p.Role)
}

// maySee reports whether p may see s: a silence that may mute alerts p
// sees, or one p's department set.
func maySee(p *auth.Principal, s *cityhubv1.Silence, k Known) bool {
	m := Matchers(s)
	switch p.Role {
	case auth.RoleCommander:
		return true
	case auth.RoleDispatcher, auth.RoleViewer:
		ds := m["district"]
		if len(p.Districts) == 0 || len(ds) == 0 {
			return true
		}
		return slices.ContainsFunc(ds, func(d string) bool { return slices.Contains(p.Districts, d) })
	case auth.RoleDepartment:
		if p.Dept == "" {
			return false
		}
		if s.GetCreatorDepartment() == p.Dept || len(m["rule"])+len(m["pack"]) == 0 {
			return true
		}
		return slices.ContainsFunc(m["rule"], func(r string) bool { return k.Rules[r] == p.Dept }) ||
			slices.ContainsFunc(m["pack"], func(pk string) bool { return k.Packs[pk] == p.Dept })
	}
	return false
}

// Matchers returns s's matchers as a pack's silence holds them.
func Matchers(s *cityhubv1.Silence) rulepack.Matchers {
	m := rulepack.Matchers{}
	for _, x := range s.GetMatchers() {
		m[x.GetName()] = x.GetValues()
	}
	return m
}

// ToPack returns s as the muting of alerts sees a silence.
func ToPack(s *cityhubv1.Silence) *rulepack.Silence {
	return &rulepack.Silence{
		Name: s.GetId(), Matchers: Matchers(s),
		Starts: s.GetStartsAt().AsTime(), Ends: s.GetEndsAt().AsTime(),
		Reason: s.GetComment(), CreatedBy: s.GetCreatedBy(),
	}
}

// State says where s stands at now: pending, active or expired.
func State(s *cityhubv1.Silence, now time.Time) string {
	switch {
	case !now.Before(s.GetEndsAt().AsTime()):
		return "expired"
	case now.Before(s.GetStartsAt().AsTime()):
		return "pending"
	}
	return "active"
}

func newSilence(id string, req *Request, m rulepack.Matchers, p *auth.Principal, now time.Time) *cityhubv1.Silence {
	starts := now
	if req.StartsAt != nil && req.StartsAt.After(now) {
		starts = *req.StartsAt
	}
	s := &cityhubv1.Silence{
		Id: id, StartsAt: timestamppb.New(starts), EndsAt: timestamppb.New(*req.EndsAt),
		Comment: strings.TrimSpace(req.Comment), CreatedBy: p.Subject, CreatorRole: string(p.Role), CreatorDepartment: p.Dept,
		CreatedAt: timestamppb.New(now), UpdatedAt: timestamppb.New(now), Forced: req.Force, Version: 1,
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		s.Matchers = append(s.Matchers, &cityhubv1.Matcher{Name: name, Values: m[name]})
	}
	return s
}

func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}
