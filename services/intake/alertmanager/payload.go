package alertmanager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits of one notification.
const (
	// MaxBodyBytes bounds a notification's body.
	MaxBodyBytes = 1 << 20
	// MaxAlerts bounds the alerts of one notification, the most events
	// intake takes at once. Alertmanager's max_alerts keeps a group below.
	MaxAlerts = 1000
	// MaxFingerprintBytes bounds an alert's fingerprint (Alertmanager's
	// are 16 hex digits).
	MaxFingerprintBytes = 128
)

// Version is the webhook payload version this receiver reads.
const Version = "4"

// The statuses of an alert, and of a notification.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// ErrPayload is wrapped by every error of Decode: the body is not a
// notification of Alertmanager's webhook, version 4.
var ErrPayload = errors.New("not an Alertmanager webhook notification (version 4)")

// ErrTooManyAlerts is wrapped by the error of Decode for a notification
// of more than MaxAlerts alerts.
var ErrTooManyAlerts = errors.New("too many alerts in one notification")

// Message is a notification of Alertmanager's webhook receiver: one group
// of alerts, as the group's route sent it.
type Message struct {
	Version string `json:"version"`
	// GroupKey identifies the group the notification is about.
	GroupKey string `json:"groupKey"`
	// TruncatedAlerts is how many alerts of the group Alertmanager left
	// out to keep within the receiver's max_alerts.
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
	// Status is resolved when every alert of the group is, else firing.
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	// EndsAt is when a resolved alert stopped firing; Alertmanager sends
	// the zero time for a firing one.
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	// Fingerprint is Alertmanager's hash of the alert's labels.
	Fingerprint string `json:"fingerprint"`
}

// Decode parses a notification and checks what the receiver relies on:
// version 4, at least one and at most MaxAlerts alerts, and for each a
// status of firing or resolved, a fingerprint and a start. Fields it does
// not know are ignored: Alertmanager adds fields to the payload without
// changing its version, and a new field must not turn alerts away. Every
// error wraps ErrPayload and lists every problem.
func Decode(body []byte) (*Message, error) {
	var msg Message
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&msg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, jsonError(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the notification object", ErrPayload)
	}
	if msg.Version != Version {
		return nil, fmt.Errorf("%w: version %q: this receiver reads version %s", ErrPayload, clip(msg.Version), Version)
	}
	switch n := len(msg.Alerts); {
	case n == 0:
		return nil, fmt.Errorf("%w: no alerts", ErrPayload)
	case n > MaxAlerts:
		return nil, fmt.Errorf("%w: %w: %d, at most %d; set max_alerts in the webhook_config", ErrPayload, ErrTooManyAlerts, n, MaxAlerts)
	}
	var errs []error
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		if a.Status != StatusFiring && a.Status != StatusResolved {
			errs = append(errs, fmt.Errorf("alerts[%d].status %q: want firing or resolved", i, clip(a.Status)))
		}
		switch {
		case a.Fingerprint == "":
			errs = append(errs, fmt.Errorf("alerts[%d].fingerprint: required", i))
		case len(a.Fingerprint) > MaxFingerprintBytes:
			errs = append(errs, fmt.Errorf("alerts[%d].fingerprint: longer than %d bytes", i, MaxFingerprintBytes))
		}
		if a.StartsAt.IsZero() {
			errs = append(errs, fmt.Errorf("alerts[%d].startsAt: required", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	return &msg, nil
}

// jsonError says what encoding/json found, naming the field where it can.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

// clip shortens what a sender sent before it is echoed in a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
