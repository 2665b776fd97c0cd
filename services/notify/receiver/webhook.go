package receiver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/cityhub/cityhub/services/notify/message"
)

// Headers of a webhook delivery besides the CloudEvent's own.
const (
	// SignatureHeader is "v1=" and the hex HMAC-SHA256, keyed with the
	// receiver's secret, of TimestampHeader's value, a full stop and the
	// body. A receiver recomputes it and refuses a timestamp outside its
	// replay window (five minutes is usual), so a captured request cannot
	// be replayed later.
	SignatureHeader = "X-Cityhub-Signature"
	// TimestampHeader is the Unix time in seconds when the delivery was
	// signed.
	TimestampHeader = "X-Cityhub-Timestamp"
	// IdempotencyHeader carries the notification's id, the same on every
	// retry: a receiver that saw it already acknowledges and does nothing.
	IdempotencyHeader = "Idempotency-Key"
)

// CloudEventType is the type of the CloudEvents a webhook receives, with
// the change appended: cn.cityhub.case.dispatched, cn.cityhub.alert.firing.
const CloudEventType = "cn.cityhub."

// Webhook posts CloudEvents 1.0 in structured JSON mode to a department's
// system.
type Webhook struct {
	URL    string
	Secret []byte
	Header http.Header
	// Source is the CloudEvents source attribute: the hub's URL.
	Source string
	Client *http.Client
	Now    func() time.Time
}

// cloudEvent is the structured-mode envelope (CloudEvents 1.0, JSON format).
type cloudEvent struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject,omitempty"`
	Time            string         `json:"time"`
	DataContentType string         `json:"datacontenttype"`
	Data            cloudEventData `json:"data"`
}

// cloudEventData is what a department's system gets to act on.
type cloudEventData struct {
	Change     string         `json:"change"`
	Department string         `json:"department,omitempty"`
	Title      string         `json:"title"`
	Text       string         `json:"text"`
	Case       *message.Case  `json:"case,omitempty"`
	Alert      *message.Alert `json:"alert,omitempty"`
	// Count is how many changes the event stands for, and More the ones
	// beyond the first when changes were grouped into one.
	Count int             `json:"count,omitempty"`
	More  []message.Brief `json:"more,omitempty"`
}

// Notify implements Notifier.
func (w *Webhook) Notify(ctx context.Context, n *Notification) error {
	m := n.Message
	ev := cloudEvent{
		SpecVersion: "1.0", ID: n.ID, Source: w.Source, Time: m.At.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data: cloudEventData{Change: m.Change, Department: m.Department.Code, Title: n.Rendered.Title, Text: n.Rendered.Text,
			Case: m.Case, Alert: m.Alert, Count: m.Count, More: m.More},
	}
	switch {
	case m.Case != nil:
		ev.Type, ev.Subject = CloudEventType+"case."+m.Change, m.Case.ID
	case m.Alert != nil:
		ev.Type, ev.Subject = CloudEventType+"alert."+m.Change, m.Alert.ID
	default:
		ev.Type = CloudEventType + m.Change
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return permanent(0, "encoding the event: %v", err)
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	h := w.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(TimestampHeader, ts)
	h.Set(SignatureHeader, Sign(w.Secret, ts, body))
	h.Set(IdempotencyHeader, n.ID)
	_, err = post(ctx, w.Client, w.URL, "application/cloudevents+json; charset=utf-8", body, h)
	return err
}

func (w *Webhook) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// Sign returns the SignatureHeader value for body signed at timestamp.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery as a department's system would: the signature
// over timestamp and body, and a timestamp within window of now. It is
// what the tests hold Webhook to, and what a receiver written in Go can
// use.
func Verify(secret []byte, signature, timestamp string, body []byte, now time.Time, window time.Duration) bool {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return false
	}
	return hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body)))
}
