package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/yamlfile"
)

// Receiver is one way of delivering messages: exactly one of its kinds is
// set.
type Receiver struct {
	Name string `yaml:"name"`
	// Webhook posts CloudEvents 1.0 to a department's own system.
	Webhook *Webhook `yaml:"webhook"`
	// WeCom, DingTalk and Feishu post to a group robot.
	WeCom    *Robot `yaml:"wecom"`
	DingTalk *Robot `yaml:"dingtalk"`
	Feishu   *Robot `yaml:"feishu"`
	// SMS sends a text to a person's phone through an HTTP gateway.
	SMS *SMS `yaml:"sms"`
	// Email sends over SMTP, to a person or to fixed addresses.
	Email *Email `yaml:"email"`
	// Inbox keeps messages for the hub's /dev/inbox page.
	Inbox *Inbox `yaml:"inbox"`
	// Fallback takes this receiver's messages after FallbackAfter failed
	// deliveries in a row (Defaults.FallbackAfter when zero).
	Fallback      string `yaml:"fallback"`
	FallbackAfter int    `yaml:"fallback_after"`
	// Template names the template of templates: its messages use; the
	// kind's own when empty.
	Template string `yaml:"template"`
	// Timeout bounds one delivery; 10s when zero.
	Timeout time.Duration `yaml:"timeout"`
	// Parallel bounds the messages sent to the receiver at once, each of
	// another case (a case's messages go one after another, in order): 4,
	// or 1 for the group robots, whose platforms limit each robot's rate
	// and whose chats read best in order.
	Parallel int `yaml:"parallel"`

	At    yamlfile.Pos       `yaml:"-"`
	Where yamlfile.Positions `yaml:"-"`
}

// DefaultTimeout bounds one delivery when a receiver sets no timeout.
const DefaultTimeout = 10 * time.Second

// DefaultParallel and MaxParallel bound the messages in flight to one
// receiver.
const (
	DefaultParallel = 4
	MaxParallel     = 64
)

// Kinds of receiver, as Receiver.Kind names them.
const (
	KindWebhook  = "webhook"
	KindWeCom    = "wecom"
	KindDingTalk = "dingtalk"
	KindFeishu   = "feishu"
	KindSMS      = "sms"
	KindEmail    = "email"
	KindInbox    = "inbox"
)

// Kind returns the kind of r, or "" when it has none or several.
func (r *Receiver) Kind() string {
	kinds := r.kinds()
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

func (r *Receiver) kinds() []string {
	var out []string
	for _, k := range []struct {
		name string
		set  bool
	}{
		{KindWebhook, r.Webhook != nil}, {KindWeCom, r.WeCom != nil}, {KindDingTalk, r.DingTalk != nil},
		{KindFeishu, r.Feishu != nil}, {KindSMS, r.SMS != nil}, {KindEmail, r.Email != nil}, {KindInbox, r.Inbox != nil},
	} {
		if k.set {
			out = append(out, k.name)
		}
	}
	return out
}

// ReachesPeople reports whether r can address one person — a phone, a
// mailbox, a mention in a group — so that a paging step may use it. A
// webhook reaches a department's system, not a person.
func (r *Receiver) ReachesPeople() bool {
	switch r.Kind() {
	case KindSMS, KindEmail, KindWeCom, KindDingTalk, KindFeishu, KindInbox:
		return true
	}
	return false
}

// Webhook is a department system that takes CloudEvents over HTTP.
type Webhook struct {
	URL Secret `yaml:"url"`
	// Secret signs every delivery (HMAC-SHA256 over timestamp and body).
	Secret  Secret             `yaml:"secret"`
	Headers map[string]string  `yaml:"headers"`
	At      yamlfile.Positions `yaml:"-"`
}

// Robot is a group robot of WeCom, DingTalk or Feishu: its webhook URL
// (which carries its key) and, for DingTalk and Feishu, its signing secret.
type Robot struct {
	URL    Secret             `yaml:"url"`
	Secret Secret             `yaml:"secret"`
	At     yamlfile.Positions `yaml:"-"`
}

// SMS is an HTTP SMS gateway: a request per message, its body from a
// template over the message (.To, .Text).
type SMS struct {
	URL         Secret             `yaml:"url"`
	Method      string             `yaml:"method"`
	ContentType string             `yaml:"content_type"`
	Body        string             `yaml:"body"`
	Headers     map[string]Secret  `yaml:"headers"`
	At          yamlfile.Positions `yaml:"-"`
}

// Email sends through an SMTP server.
type Email struct {
	Smarthost string `yaml:"smarthost"`
	From      string `yaml:"from"`
	Username  string `yaml:"username"`
	Password  Secret `yaml:"password"`
	// TLS is none, starttls (the default) or tls.
	TLS string `yaml:"tls"`
	// To are fixed addresses; a paging step writes to the person instead.
	To []string           `yaml:"to"`
	At yamlfile.Positions `yaml:"-"`
}

// Inbox keeps messages in memory for /dev/inbox.
type Inbox struct{}

// Secret is a value kept out of notify.yaml: from an environment variable
// or a file (a mounted Kubernetes Secret), or, for tests and the dev hub,
// written in place. notify.yaml may write it as a plain string or as
// {env: NAME}, {file: PATH} or {value: TEXT}.
type Secret struct {
	Env   string       `yaml:"env"`
	File  string       `yaml:"file"`
	Value string       `yaml:"value"`
	At    yamlfile.Pos `yaml:"-"`
}

// UnmarshalText takes a secret written in place.
func (s *Secret) UnmarshalText(b []byte) error {
	s.Value = string(b)
	return nil
}

// IsZero reports whether s was not given.
func (s Secret) IsZero() bool { return s.Env == "" && s.File == "" && s.Value == "" }

// String never shows the value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "$" + s.Env
	case s.File != "":
		return "file " + s.File
	case s.Value != "":
		return "(secret)"
	}
	return "(none)"
}

// Resolve returns the secret's value, reading the environment or the file.
func (s Secret) Resolve() (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return s.Value, nil
}

var envRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)

func (v *validator) secret(s *Secret, at yamlfile.Pos, what string, required bool) {
	n := 0
	for _, x := range []string{s.Env, s.File, s.Value} {
		if x != "" {
			n++
		}
	}
	switch {
	case n == 0 && required:
		v.errorf(at, "%s: required", what)
	case n > 1:
		v.errorf(at, "%s: give one of env, file and value", what)
	case s.Env != "" && !envRE.MatchString(s.Env):
		v.errorf(at, "%s: env %q: want an environment variable name such as CITYHUB_SMS_TOKEN", what, clip(s.Env))
	}
}

// url checks a URL that may be a secret: written in place it must parse.
func (v *validator) url(s *Secret, at yamlfile.Pos, what string) {
	v.secret(s, at, what, true)
	if s.Value == "" {
		return
	}
	u, err := url.Parse(s.Value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(at, "%s: want an http or https URL", what)
	}
}

func (v *validator) checkReceivers() {
	v.receivers = map[string]*Receiver{}
	if len(v.cfg.Receivers) > MaxReceivers {
		v.errorf(v.cfg.At["receivers"], "receivers: %d, at most %d", len(v.cfg.Receivers), MaxReceivers)
		return
	}
	for i := range v.cfg.Receivers {
		r := &v.cfg.Receivers[i]
		what := fmt.Sprintf("receiver %s", r.Name)
		switch {
		case !nameRE.MatchString(r.Name):
			v.errorf(r.At, "receivers[%d]: name %q: want lower-case letters, digits, - and _", i, clip(r.Name))
			continue
		case v.receivers[r.Name] != nil:
			v.errorf(r.Where["name"], "%s: named twice", what)
			continue
		}
		v.receivers[r.Name] = r
		switch kinds := r.kinds(); len(kinds) {
		case 0:
			v.errorf(r.At, "%s: give one of webhook, wecom, dingtalk, feishu, sms, email and inbox", what)
		case 1:
		default:
			v.errorf(r.At, "%s: one kind per receiver, not %s", what, strings.Join(kinds, " and "))
		}
		switch {
		case r.Timeout < 0 || r.Timeout > time.Minute:
			v.errorf(r.Where["timeout"], "%s: timeout %s is outside 0s to 1m", what, r.Timeout)
		case r.Timeout == 0:
			r.Timeout = DefaultTimeout
		}
		switch {
		case r.Parallel < 0 || r.Parallel > MaxParallel:
			v.errorf(r.Where["parallel"], "%s: parallel: want 1 to %d", what, MaxParallel)
		case r.Parallel == 0 && (r.WeCom != nil || r.DingTalk != nil || r.Feishu != nil):
			r.Parallel = 1
		case r.Parallel == 0:
			r.Parallel = DefaultParallel
		}
		if r.FallbackAfter < 0 || r.FallbackAfter > MaxFallbackAfter {
			v.errorf(r.Where["fallback_after"], "%s: fallback_after: want 1 to %d", what, MaxFallbackAfter)
		} else if r.FallbackAfter == 0 {
			r.FallbackAfter = v.cfg.Defaults.FallbackAfter
		}
		if r.Template != "" {
			if _, ok := v.cfg.Templates[r.Template]; !ok {
				v.errorf(r.Where["template"], "%s: no template %q in templates", what, clip(r.Template))
			}
		}
		v.receiverKind(r, what)
	}
	// Fallbacks are checked once every name is known: they may point
	// forward, but not at themselves, round in a circle, or at nothing.
	for i := range v.cfg.Receivers {
		r := &v.cfg.Receivers[i]
		if r.Fallback == "" {
			continue
		}
		if v.receivers[r.Fallback] == nil {
			v.errorf(r.Where["fallback"], "receiver %s: fallback %q is not a receiver", r.Name, clip(r.Fallback))
			continue
		}
		seen := map[string]bool{r.Name: true}
		for next := r.Fallback; next != ""; next = v.receivers[next].Fallback {
			if seen[next] {
				v.errorf(r.Where["fallback"], "receiver %s: its fallbacks lead back to %s", r.Name, next)
				break
			}
			seen[next] = true
			if v.receivers[next] == nil {
				break
			}
		}
	}
}

func (v *validator) receiverKind(r *Receiver, what string) {
	switch {
	case r.Webhook != nil:
		w := r.Webhook
		v.url(&w.URL, at(w.At, "url", r.At), what+": webhook.url")
		v.secret(&w.Secret, at(w.At, "secret", r.At), what+": webhook.secret", true)
		for h := range w.Headers {
			if !headerRE.MatchString(h) {
				v.errorf(w.At["headers"], "%s: webhook.headers: %q is not a header name", what, clip(h))
			}
		}
	case r.WeCom != nil:
		v.url(&r.WeCom.URL, at(r.WeCom.At, "url", r.At), what+": wecom.url")
		if !r.WeCom.Secret.IsZero() {
			v.errorf(r.WeCom.At["secret"], "%s: wecom robots do not sign; their key is in the URL", what)
		}
	case r.DingTalk != nil:
		v.url(&r.DingTalk.URL, at(r.DingTalk.At, "url", r.At), what+": dingtalk.url")
		v.secret(&r.DingTalk.Secret, r.DingTalk.At["secret"], what+": dingtalk.secret", false)
	case r.Feishu != nil:
		v.url(&r.Feishu.URL, at(r.Feishu.At, "url", r.At), what+": feishu.url")
		v.secret(&r.Feishu.Secret, r.Feishu.At["secret"], what+": feishu.secret", false)
	case r.SMS != nil:
		s := r.SMS
		v.url(&s.URL, at(s.At, "url", r.At), what+": sms.url")
		switch {
		case s.Method == "":
			s.Method = "POST"
		case s.Method != "POST" && s.Method != "PUT" && s.Method != "GET":
			v.errorf(s.At["method"], "%s: sms.method %q: want POST, PUT or GET", what, clip(s.Method))
		}
		if s.ContentType == "" {
			s.ContentType = "application/json"
		}
		if s.Body == "" && s.Method != "GET" {
			v.errorf(at(s.At, "body", r.At), "%s: sms.body: required, a template over .To and .Text", what)
		}
		v.template(s.Body, at(s.At, "body", r.At), what+": sms.body", smsSample)
		for h, sec := range s.Headers {
			if !headerRE.MatchString(h) {
				v.errorf(s.At["headers"], "%s: sms.headers: %q is not a header name", what, clip(h))
			}
			v.secret(&sec, s.At["headers"], what+": sms.headers."+h, true)
		}
	case r.Email != nil:
		e := r.Email
		if _, _, err := splitHostPort(e.Smarthost); err != nil {
			v.errorf(at(e.At, "smarthost", r.At), "%s: email.smarthost: %v", what, err)
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			v.errorf(at(e.At, "from", r.At), "%s: email.from %q: not an address", what, clip(e.From))
		}
		for _, to := range e.To {
			if _, err := mail.ParseAddress(to); err != nil {
				v.errorf(e.At["to"], "%s: email.to %q: not an address", what, clip(to))
			}
		}
		switch e.TLS {
		case "":
			e.TLS = "starttls"
		case "none", "starttls", "tls":
		default:
			v.errorf(e.At["tls"], "%s: email.tls %q: want none, starttls or tls", what, clip(e.TLS))
		}
		v.secret(&e.Password, at(e.At, "password", r.At), what+": email.password", e.Username != "")
	}
}

// at returns where key was written, or fallback (the enclosing mapping)
// when it was not.
func at(p yamlfile.Positions, key string, fallback yamlfile.Pos) yamlfile.Pos {
	if pos, ok := p[key]; ok {
		return pos
	}
	return fallback
}

var headerRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func splitHostPort(s string) (string, string, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok || host == "" || port == "" {
		return "", "", fmt.Errorf("%q: want host:port", clip(s))
	}
	return host, port, nil
}

func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}
