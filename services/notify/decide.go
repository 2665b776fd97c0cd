package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/dispatch/lifecycle"
	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
	"github.com/cityhub/cityhub/services/notify/roster"
	"github.com/cityhub/cityhub/services/notify/route"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/scope"
)

// Repeats of a message chasing a department (dispatched, escalated, warned,
// overdue) while nobody accepts: at most this many, the first
// RepeatInterval after the change and each after that long from the send
// before.
const MaxRepeats = 3

// LinkFunc returns the acknowledgement link for person to act on the part
// of dept in caseID, sent through receiver, or "" when there is none to
// give.
type LinkFunc func(caseID, dept, personID, receiver string, expires time.Time) string

// Decider turns changes into notifications by notify.yaml. It holds one
// loaded configuration and is safe for concurrent use; a reload builds a
// new one.
type Decider struct {
	cfg     *config.Config
	tree    *route.Tree
	rosters map[string]*roster.Roster
	cat     *catalog.Catalog
	link    LinkFunc
	baseURL string
}

// NewDecider returns the decider of cfg. cal answers the routes' time
// conditions; loc is the zone of the rosters' hours; link makes the
// acknowledgement links of paged people (nil: none).
func NewDecider(cfg *config.Config, cat *catalog.Catalog, cal route.Calendar, loc *time.Location, link LinkFunc, baseURL string) *Decider {
	d := &Decider{cfg: cfg, tree: route.New(cfg, cal), rosters: map[string]*roster.Roster{}, cat: cat, link: link, baseURL: baseURL}
	for i := range cfg.Rosters {
		r := &cfg.Rosters[i]
		d.rosters[r.Department] = roster.New(r, loc)
	}
	return d
}

// Cancel drops what still chases the part of Department in CaseID: paging
// steps and repeats that changes before Version decided.
type Cancel struct {
	CaseID, Department string
	Version            int64
}

// Decision is what one change means for notify.
type Decision struct {
	Notifications []*cityhubv1.Notification
	Cancels       []Cancel
}

// Case decides what cc means. It is a pure function of cc and the
// configuration: the same change decided again gives the same ids.
func (d *Decider) Case(cc *cityhubv1.CaseChange) Decision {
	c, entry := cc.GetCase(), cc.GetChange()
	var out Decision
	at := entry.GetAt().AsTime()
	for _, h := range entry.GetHappened() {
		// What chases a part stops once the part is accepted, handled or
		// handed back, and what chases any part once the case is over.
		switch h.GetKind() {
		case lifecycle.HappenedAccepted, lifecycle.HappenedReturned, lifecycle.HappenedHandled:
			out.Cancels = append(out.Cancels, Cancel{CaseID: c.GetId(), Department: h.GetDepartment(), Version: entry.GetVersion()})
		case lifecycle.HappenedClosed, lifecycle.HappenedCancelled, lifecycle.HappenedMerged:
			for _, dept := range scope.Departments(c) {
				out.Cancels = append(out.Cancels, Cancel{CaseID: c.GetId(), Department: dept, Version: entry.GetVersion()})
			}
		}
		ch := route.Change{
			Stream: config.StreamCases, Kind: h.GetKind(), Department: h.GetDepartment(), Departments: scope.Departments(c),
			District: c.GetDistrict(), Severity: c.GetSeverity().Name(), EventType: c.GetEventType(),
			CaseClass: c.GetSla().GetCaseClass(), Rule: c.GetRule(),
		}
		msg := d.caseMessage(c, h, at)
		for _, t := range d.tree.Route(ch, at) {
			out.Notifications = append(out.Notifications, d.toReceivers(t, c, h, msg, at, entry.GetVersion())...)
			out.Notifications = append(out.Notifications, d.page(t, c, h, msg, at, entry.GetVersion())...)
		}
	}
	for _, n := range out.Notifications {
		n.Version = entry.GetVersion() // what a later cancel drops, and what it spares
	}
	return out
}

// Alert decides what a published alert means: firing, resolved, or a
// severity raised.
func (d *Decider) Alert(a *cityhubv1.Alert) Decision {
	kind := ""
	switch {
	case a.GetState() == cityhubv1.AlertState_ALERT_STATE_RESOLVED:
		kind = "resolved"
	case a.GetState() != cityhubv1.AlertState_ALERT_STATE_FIRING || a.GetShadow() || len(a.GetSilencedBy()) > 0 || len(a.GetInhibitedBy()) > 0:
		return Decision{} // pending, trial and muted alerts tell nobody
	case a.GetPreviousSeverity() != cityhubv1.Severity_SEVERITY_UNSPECIFIED && a.GetPreviousSeverity() < a.GetSeverity():
		kind = "escalated"
	case a.GetVersion() == 1 || a.GetPreviousSeverity() == cityhubv1.Severity_SEVERITY_UNSPECIFIED:
		kind = "firing"
	default:
		return Decision{}
	}
	ch := route.Change{Stream: config.StreamAlerts, Kind: kind, Departments: scope.AlertDepartments(a), District: a.GetDistrict(),
		Severity: a.GetSeverity().Name(), EventType: a.GetEventType(), Rule: a.GetRule()}
	at := a.GetUpdatedAt().AsTime()
	m := &message.Message{Change: kind, At: at, Alert: &message.Alert{
		ID: a.GetId(), Rule: a.GetRule(), Title: a.GetTitle(), State: a.GetState().Name(), Severity: a.GetSeverity().Name(),
		District: d.district(a.GetDistrict()), Summary: a.GetSummary(), URL: d.baseURL + "/#alert=" + a.GetId(),
	}}
	var out Decision
	var mb []byte
	for _, t := range d.tree.Route(ch, at) {
		for _, r := range t.Receivers {
			if mb == nil {
				mb = encode(m)
			}
			key := []string{"alert", a.GetId(), strconv.FormatInt(a.GetVersion(), 10), kind, t.Path, r}
			out.Notifications = append(out.Notifications, notification(key, r, "", "", false, r+"|"+t.Path+"|alert", at.Add(t.Timing.GroupWait), t.Path, mb))
		}
	}
	return out
}

// toReceivers tells the route's receivers, and repeats a chasing message
// while the part is not accepted.
func (d *Decider) toReceivers(t route.Target, c *cityhubv1.Case, h *cityhubv1.Happening, m *message.Message, at time.Time, version int64) []*cityhubv1.Notification {
	var out []*cityhubv1.Notification
	chases := slices.Contains(config.DepartmentChanges, h.GetKind()) && h.GetDepartment() != ""
	var mb []byte
	if len(t.Receivers) > 0 {
		mb = encode(m)
	}
	for _, r := range t.Receivers {
		group := r + "|" + t.Path + "|" + h.GetKind() + "|" + h.GetDepartment()
		key := []string{c.GetId(), strconv.FormatInt(version, 10), h.GetKind(), h.GetDepartment(), t.Path, r}
		out = append(out, notification(key, r, c.GetId(), h.GetDepartment(), false, group, at.Add(t.Timing.GroupWait), t.Path, mb))
		if !chases || t.Timing.RepeatInterval <= 0 {
			continue
		}
		// One notification stands for the repeats: due a repeat interval on,
		// sent again that long after each send, stopped by an accept. Each
		// goes on its own (a group of its own).
		rn := notification(append(slices.Clone(key), "repeat"), r, c.GetId(), h.GetDepartment(), true, "", at.Add(t.Timing.RepeatInterval), t.Path, mb)
		rn.RepeatEvery, rn.Repeats = durationpb.New(t.Timing.RepeatInterval), MaxRepeats-1
		out = append(out, rn)
	}
	return out
}

// page runs the route's paging ladder for the department h is addressed
// to: each step's person, through each of its receivers, at its delay.
func (d *Decider) page(t route.Target, c *cityhubv1.Case, h *cityhubv1.Happening, m *message.Message, at time.Time, version int64) []*cityhubv1.Notification {
	dept := h.GetDepartment()
	ro := d.rosters[dept]
	if len(t.Page) == 0 || ro == nil || dept == "" {
		return nil
	}
	var out []*cityhubv1.Notification
	var prev string
	for i, step := range t.Page {
		due := at.Add(step.After)
		var p *config.Person
		switch step.To {
		case config.ToOnDuty:
			p = ro.OnDuty(due)
		case config.ToNext:
			p = ro.Next(prev, due)
		case config.ToHead:
			p = ro.Head()
		default:
			p, _ = ro.Person(step.To)
		}
		if p == nil {
			continue
		}
		prev = p.ID
		for _, r := range step.Via {
			pm := *m
			pm.Person = &message.Person{ID: p.ID, Name: p.Name, Phone: p.Phone, Email: p.Email}
			if d.link != nil {
				pm.AckURL = d.link(c.GetId(), dept, p.ID, r, deadline(c, dept, due))
			}
			key := []string{c.GetId(), strconv.FormatInt(version, 10), h.GetKind(), dept, t.Path, "page", strconv.Itoa(i), p.ID, r}
			out = append(out, notification(key, r, c.GetId(), dept, true, "", due, t.Path, encode(&pm)))
		}
	}
	return out
}

// deadline is when an acknowledgement link stops working: the part's
// final accept moment, and a day from due at the least.
func deadline(c *cityhubv1.Case, dept string, due time.Time) time.Time {
	end := due.Add(24 * time.Hour)
	for _, p := range c.GetParts() {
		if p.GetDepartment() == dept {
			if f := p.GetAcceptDeadline().GetFinalAt(); f != nil && f.AsTime().After(end) {
				end = f.AsTime()
			}
		}
	}
	return end
}

// caseMessage is the message of h on c.
func (d *Decider) caseMessage(c *cityhubv1.Case, h *cityhubv1.Happening, at time.Time) *message.Message {
	mc := &message.Case{
		ID: c.GetId(), Title: c.GetTitle(), Status: c.GetStatus().Name(), Severity: c.GetSeverity().Name(),
		District: d.district(c.GetDistrict()), EventType: d.eventType(c.GetEventType()), Lead: d.department(c.GetLead()),
		URL: d.baseURL + "/console#case=" + c.GetId(),
	}
	if l := c.GetLocation(); l != nil {
		mc.Street, mc.Address = l.GetStreet(), l.GetAddress()
	}
	for _, a := range c.GetAssist() {
		mc.Assist = append(mc.Assist, d.department(a))
	}
	for _, p := range c.GetParts() {
		if p.GetDepartment() == h.GetDepartment() || (h.GetDepartment() == "" && p.GetLead()) {
			mc.AcceptDue = ts(p.GetAcceptDeadline().GetDueAt())
			mc.HandleDue = ts(p.GetHandleDeadline().GetDueAt())
			mc.Note = p.GetNote()
		}
	}
	return &message.Message{Change: h.GetKind(), Case: mc, Department: d.department(h.GetDepartment()), Count: 1, At: at}
}

func ts(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func (d *Decider) district(code string) message.Name {
	if x, ok := d.cat.District(code); ok {
		return message.Name{Code: code, Name: x.Name}
	}
	return message.Name{Code: code}
}

func (d *Decider) department(code string) message.Name {
	if code == "" {
		return message.Name{}
	}
	if x, ok := d.cat.Department(code); ok {
		return message.Name{Code: code, Name: x.Name}
	}
	return message.Name{Code: code}
}

func (d *Decider) eventType(code string) message.Name {
	if x, ok := d.cat.EventType(code); ok {
		return message.Name{Code: code, Name: x.Name}
	}
	return message.Name{Code: code}
}

// notification builds one notification; its id is a hash of key, the
// parts of the decision that make it this one.
func notification(key []string, receiver, caseID, dept string, stopOnAccept bool, group string, due time.Time, path string, m []byte) *cityhubv1.Notification {
	h := sha256.New()
	for _, k := range key {
		h.Write([]byte(k))
		h.Write([]byte{0})
	}
	id := hex.EncodeToString(h.Sum(nil)[:12])
	if group == "" {
		group = id
	}
	return &cityhubv1.Notification{
		Id: id, Receiver: receiver, CaseId: caseID, Department: dept, StopOnAccept: stopOnAccept,
		Group: group, Due: timestamppb.New(due), Route: path, Message: m,
	}
}

// encode is the JSON a notification carries m as; a Message always
// encodes.
func encode(m *message.Message) []byte {
	b, _ := json.Marshal(m)
	return b
}
