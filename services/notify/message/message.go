// Package message is what a notification says: the data a template sees
// (Message), the restricted templates that render it, and the default
// templates in Chinese and English. Receivers turn a rendered message into
// their platform's own request.
package message

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"
)

// Message is the data of one notification as its templates see it.
type Message struct {
	// Change is what happened: a case change (dispatched, escalated, …) or
	// an alert change (firing, resolved, escalated).
	Change string
	// Case is the case the change is about; nil for an alert-only route.
	Case *Case
	// Alert is the alert of an alert-only route; nil otherwise.
	Alert *Alert
	// Department is the department the message is for, when it is for one
	// (the part dispatched to it, the level escalated to).
	Department Name
	// Person is the person paged, when a paging step sends the message.
	Person *Person
	// AckURL lets the person paged accept or return their department's
	// part without signing in; empty when the message is not to a person.
	AckURL string
	// Count is how many changes the message stands for (grouped), and
	// More the others beyond the first, newest first.
	Count int
	More  []Brief
	// At is when the change happened.
	At time.Time
}

// Name is a code and its name in the catalog.
type Name struct{ Code, Name string }

// String returns the name, or the code when the catalog names none.
func (n Name) String() string {
	if n.Name != "" {
		return n.Name
	}
	return n.Code
}

// Case is a case as a message shows it.
type Case struct {
	ID, Title, Status, Severity string
	District                    Name
	Street, Address             string
	EventType                   Name
	Lead                        Name
	Assist                      []Name
	AcceptDue, HandleDue        time.Time
	Note                        string
	URL                         string
}

// Alert is an alert as a message shows it.
type Alert struct {
	ID, Rule, Title, State, Severity string
	District                         Name
	Summary                          string
	URL                              string
}

// Person is the person a paging step reaches.
type Person struct{ ID, Name, Phone, Email string }

// Brief is one of several changes grouped into one message.
type Brief struct {
	Change string    `json:"change"`
	CaseID string    `json:"case_id,omitempty"`
	Title  string    `json:"title"`
	At     time.Time `json:"at"`
}

// Rendered is a message ready for a receiver: a title and a text.
type Rendered struct{ Title, Text string }

// Template renders messages. It is safe for concurrent use.
type Template struct {
	title, text *template.Template
}

// MaxRendered bounds what one template may render.
const MaxRendered = 16 << 10

// funcs are the only functions templates may call besides the builtins:
// formatting, no I/O.
var funcs = template.FuncMap{
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(shanghai).Format("01-02 15:04")
	},
	"join":  strings.Join,
	"upper": strings.ToUpper,
	// changeZH names a change in Chinese, or repeats it.
	"changeZH": func(c string) string {
		if zh, ok := changesZH[c]; ok {
			return zh
		}
		return c
	},
}

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

// Parse parses a title and a text template, then renders the sample
// message with both, so that a field the message does not have is an
// error now rather than at 3 a.m.
func Parse(title, text string) (*Template, error) {
	t := &Template{}
	var err error
	if t.title, err = parseOne("title", title); err != nil {
		return nil, err
	}
	if t.text, err = parseOne("text", text); err != nil {
		return nil, err
	}
	if _, err := t.Render(Sample()); err != nil {
		return nil, err
	}
	return t, nil
}

// ParseText parses one template over data, checking it against sample
// (e.g. an SMS gateway's body over {To, Text}).
func ParseText(name, text string, sample any) (*template.Template, error) {
	t, err := parseOne(name, text)
	if err != nil {
		return nil, err
	}
	if _, err := execute(t, sample); err != nil {
		return nil, err
	}
	return t, nil
}

func parseOne(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, cleanErr(err))
	}
	return t, nil
}

// Render renders m.
func (t *Template) Render(m *Message) (Rendered, error) {
	title, err := execute(t.title, m)
	if err != nil {
		return Rendered{}, err
	}
	text, err := execute(t.text, m)
	if err != nil {
		return Rendered{}, err
	}
	return Rendered{Title: strings.TrimSpace(title), Text: strings.TrimSpace(text)}, nil
}

// Execute renders the template t over data, bounded by MaxRendered.
func Execute(t *template.Template, data any) (string, error) { return execute(t, data) }

func execute(t *template.Template, data any) (string, error) {
	var b limited
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", t.Name(), cleanErr(err))
	}
	return b.String(), nil
}

// limited is a buffer that refuses to grow past MaxRendered.
type limited struct{ bytes.Buffer }

var errTooLong = fmt.Errorf("renders more than %d bytes", MaxRendered)

func (l *limited) Write(p []byte) (int, error) {
	if l.Len()+len(p) > MaxRendered {
		return 0, errTooLong
	}
	return l.Buffer.Write(p)
}

// cleanErr turns text/template's errors into short ones: its
// "template: NAME:" prefix and the "executing ... at" clause go, the
// caller says which template it is.
func cleanErr(err error) error {
	if errors.Is(err, errTooLong) {
		return errTooLong
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "template: ")
	if m := execRE.FindStringSubmatch(msg); m != nil {
		msg = m[1] + ": " + m[2] + ": " + m[3]
	} else if i := strings.Index(msg, ":"); i >= 0 {
		msg = strings.TrimSpace(msg[i+1:])
	}
	if i := strings.Index(msg, " in type "); i >= 0 {
		msg = msg[:i]
	}
	return errors.New(msg)
}

// execRE reads "NAME:LINE:COL: executing "NAME" at <ACTION>: PROBLEM".
var execRE = regexp.MustCompile(`^.*?:(\d+:\d+): executing ".*?" at (<.*?>): (.*)$`)

// Sample is a message with every field set, for checking templates.
func Sample() *Message {
	at := time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC)
	return &Message{
		Change: "dispatched",
		Case: &Case{
			ID: "xuhui-01jz2g93z0ptff52h35j58yj80", Title: "燃气泄漏 天平路", Status: "dispatched", Severity: "extreme",
			District: Name{"xuhui", "徐汇区"}, Street: "tianping", Address: "天平路 广元路口",
			EventType: Name{"gas_leak", "燃气泄漏"}, Lead: Name{"gas", "燃气公司"}, Assist: []Name{{"fire", "消防救援支队"}},
			AcceptDue: at.Add(10 * time.Minute), HandleDue: at.Add(2 * time.Hour), Note: "已到场", URL: "https://hub.example/console#case=xuhui-01jz2g93z0ptff52h35j58yj80",
		},
		Alert: &Alert{
			ID: "4b0a514ab1cb5c2a", Rule: "gas/leak", Title: "燃气泄漏", State: "firing", Severity: "extreme",
			District: Name{"xuhui", "徐汇区"}, Summary: "LEL 32%", URL: "https://hub.example/#alert=4b0a514ab1cb5c2a",
		},
		Department: Name{"gas", "燃气公司"},
		Person:     &Person{ID: "zhang-wei", Name: "张伟", Phone: "13800000001", Email: "zhang@gas.example"},
		AckURL:     "https://hub.example/ack/sample",
		Count:      2,
		More:       []Brief{{Change: "escalated", CaseID: "xuhui-01jz2g93z0ptff52h35j58yj81", Title: "燃气泄漏 衡山路", At: at}},
		At:         at,
	}
}
