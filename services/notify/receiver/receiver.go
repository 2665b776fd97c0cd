// Package receiver delivers rendered notifications in each platform's own
// wire format: CloudEvents to a department's system, the group robots of
// WeCom, DingTalk and Feishu, an HTTP SMS gateway, SMTP mail and the dev
// inbox. A delivery either succeeds or fails with an *Error that says
// whether trying again can help and when.
package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/notify/message"
)

// Notification is one message to deliver through one receiver.
type Notification struct {
	// ID identifies the notification across retries and redeliveries: the
	// receivers that can pass an idempotency key pass it.
	ID string
	// Receiver is the name of the receiver it goes through.
	Receiver string
	// Message is what the templates saw; Rendered what they made of it.
	Message  *message.Message
	Rendered message.Rendered
}

// Notifier delivers notifications through one receiver. Implementations
// are safe for concurrent use.
type Notifier interface {
	// Notify delivers n, or returns an error; errors that are not an
	// *Error are treated as transient.
	Notify(ctx context.Context, n *Notification) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n *Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n *Notification) error { return f(ctx, n) }

// Error is a failed delivery and what to do about it.
type Error struct {
	// Retry says whether the same delivery may succeed later; After, when
	// set, is when at the earliest (a Retry-After).
	Retry bool
	After time.Duration
	// Gone says the destination is gone for good (HTTP 410): stop
	// delivering there.
	Gone bool
	// Status is the HTTP status or the platform's error code, if any.
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether err, from Notify, may succeed if tried again,
// and after how long at the earliest.
func Retryable(err error) (bool, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Retry, e.After
	}
	return true, 0
}

// permanent is a failure retrying cannot fix.
func permanent(status int, format string, args ...any) *Error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// transient is a failure that may pass.
func transient(status int, after time.Duration, format string, args ...any) *Error {
	return &Error{Retry: true, After: after, Status: status, Err: fmt.Errorf(format, args...)}
}

// MaxResponseBytes bounds what is read of a receiver's answer.
const MaxResponseBytes = 64 << 10

// httpOutcome classifies an HTTP answer: 2xx is success, 429 and 5xx may
// pass (after Retry-After when given), 410 is gone for good, and other
// statuses will not change by retrying. The body is returned for the
// platforms that answer errors inside a 200.
func httpOutcome(resp *http.Response, now time.Time) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, transient(resp.StatusCode, 0, "reading the answer: %v", err)
	}
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return body, nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return body, transient(code, retryAfter(resp.Header.Get("Retry-After"), now), "HTTP %d: %s", code, snippet(body))
	case code >= 500:
		return body, transient(code, 0, "HTTP %d: %s", code, snippet(body))
	case code == http.StatusGone:
		return body, &Error{Gone: true, Status: code, Err: fmt.Errorf("HTTP 410: the receiver is gone: %s", snippet(body))}
	case code == http.StatusRequestTimeout:
		return body, transient(code, 0, "HTTP 408")
	}
	return body, permanent(code, "HTTP %d: %s", code, snippet(body))
}

// MaxRetryAfter bounds how long a Retry-After may hold a delivery back.
const MaxRetryAfter = time.Hour

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, MaxRetryAfter))
}

// snippet shortens an answer for an error message.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// post sends body to url with headers and classifies the answer.
func post(ctx context.Context, c *http.Client, url, contentType string, body []byte, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytesReader(body))
	if err != nil {
		return nil, permanent(0, "building the request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, transient(0, 0, "no answer in time: %v", ctx.Err())
		}
		return nil, transient(0, 0, "%v", redact(err))
	}
	defer resp.Body.Close()
	return httpOutcome(resp, time.Now())
}

// redact drops the URL from a transport error: robots' URLs carry their
// keys, which must never reach a log or an attempt record.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToUpper(ue.Op), ue.Err)
	}
	return err
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
