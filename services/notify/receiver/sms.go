package receiver

import (
	"context"
	"net/http"
	"text/template"
	"time"

	"github.com/cityhub/cityhub/services/notify/message"
)

// SMS sends a text to the person paged through an HTTP SMS gateway: one
// request per message, its body rendered from a template over To (the
// phone number) and Text, JSON-escaped when the gateway takes JSON.
type SMS struct {
	URL         string
	Method      string
	ContentType string
	Body        *template.Template
	Header      http.Header
	Client      *http.Client
}

// MaxSMSRunes bounds a text: gateways split longer ones into several
// messages, or refuse them.
const MaxSMSRunes = 300

// Notify implements Notifier.
func (s *SMS) Notify(ctx context.Context, n *Notification) error {
	p := n.Message.Person
	if p == nil || p.Phone == "" {
		return permanent(0, "sms: nobody with a phone to send to")
	}
	text := clipRunes(n.Rendered.Title+" "+n.Rendered.Text, MaxSMSRunes)
	data := struct{ To, Text string }{To: p.Phone, Text: text}
	if isJSON(s.ContentType) {
		data = struct{ To, Text string }{To: jsonString(p.Phone), Text: jsonString(text)}
	}
	body, err := message.Execute(s.Body, data)
	if err != nil {
		return permanent(0, "sms body: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, s.URL, bytesReader([]byte(body)))
	if err != nil {
		return permanent(0, "building the request: %v", err)
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", s.ContentType)
	req.Header.Set(IdempotencyHeader, n.ID)
	resp, err := s.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return transient(0, 0, "no answer in time")
		}
		return transient(0, 0, "%v", redact(err))
	}
	defer resp.Body.Close()
	_, err = httpOutcome(resp, time.Now())
	return err
}
