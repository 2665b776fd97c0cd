package receiver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/cityhub/cityhub/services/notify/config"
	"github.com/cityhub/cityhub/services/notify/message"
)

// Options are what every receiver built by New shares.
type Options struct {
	// Client makes the HTTP requests; one with the receiver's timeout when nil.
	Client *http.Client
	// Source is the hub's base URL, the CloudEvents source.
	Source string
	// Inbox is the dev inbox the inbox receivers write to.
	Inbox *Inbox
	// SMTPTLS, when set, replaces the TLS configuration of mail (tests).
	SMTPTLS *tls.Config
}

// New builds the notifier of r, resolving its secrets. It fails when a
// secret cannot be resolved: a receiver that cannot deliver is refused at
// load, not discovered at 3 a.m.
func New(r *config.Receiver, o Options) (Notifier, error) {
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: r.Timeout}
	}
	var errs []error
	resolve := func(s config.Secret, what string) string {
		v, err := s.Resolve()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		return v
	}
	var n Notifier
	switch r.Kind() {
	case config.KindWebhook:
		w := r.Webhook
		h := http.Header{}
		for k, v := range w.Headers {
			h.Set(k, v)
		}
		n = &Webhook{URL: resolve(w.URL, "url"), Secret: []byte(resolve(w.Secret, "secret")), Header: h, Source: o.Source, Client: client}
	case config.KindWeCom:
		n = &WeCom{URL: resolve(r.WeCom.URL, "url"), Client: client}
	case config.KindDingTalk:
		n = &DingTalk{URL: resolve(r.DingTalk.URL, "url"), Secret: resolve(r.DingTalk.Secret, "secret"), Client: client}
	case config.KindFeishu:
		n = &Feishu{URL: resolve(r.Feishu.URL, "url"), Secret: resolve(r.Feishu.Secret, "secret"), Client: client}
	case config.KindSMS:
		s := r.SMS
		body, err := message.ParseText("body", s.Body, struct{ To, Text string }{})
		if err != nil {
			errs = append(errs, err)
		}
		h := http.Header{}
		for k, v := range s.Headers {
			h.Set(k, resolve(v, "headers."+k))
		}
		n = &SMS{URL: resolve(s.URL, "url"), Method: s.Method, ContentType: s.ContentType, Body: body, Header: h, Client: client}
	case config.KindEmail:
		e := r.Email
		n = &Email{Smarthost: e.Smarthost, From: e.From, To: e.To, Username: e.Username, Password: resolve(e.Password, "password"), TLS: e.TLS, TLSConfig: o.SMTPTLS}
	case config.KindInbox:
		if o.Inbox == nil {
			errs = append(errs, fmt.Errorf("no inbox to write to"))
		}
		n = o.Inbox
	default:
		errs = append(errs, fmt.Errorf("no kind"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("receiver %s: %w", r.Name, errors.Join(errs...))
	}
	return n, nil
}
