package receiver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/cityhub/cityhub/services/notify/message"
)

func sample(person bool) *Notification {
	m := message.Sample()
	if !person {
		m.Person = nil
	}
	return &Notification{ID: "n-01", Receiver: "r", Message: m, Rendered: message.Rendered{Title: "燃气泄漏 天平路", Text: "请于 11:10 前签收 \"立即\""}}
}

// outcome asserts what kind of failure err is.
func outcome(t *testing.T, err error, retry bool, after time.Duration, gone bool) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if e.Retry != retry || e.After != after || e.Gone != gone {
		t.Errorf("error %v: retry %v after %v gone %v; want %v %v %v", err, e.Retry, e.After, e.Gone, retry, after, gone)
	}
}

func TestWebhookSendsASignedCloudEvent(t *testing.T) {
	secret := []byte("s3cret")
	var got struct {
		ce     map[string]any
		header http.Header
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !Verify(secret, r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader), body, time.Now(), 5*time.Minute) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		got.header = r.Header.Clone()
		json.Unmarshal(body, &got.ce)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL, Secret: secret, Source: "https://hub.example", Client: srv.Client()}
	if err := w.Notify(context.Background(), sample(false)); err != nil {
		t.Fatal(err)
	}
	if got.ce["specversion"] != "1.0" || got.ce["id"] != "n-01" || got.ce["type"] != "cn.cityhub.case.dispatched" ||
		got.ce["subject"] != "xuhui-01jz2g93z0ptff52h35j58yj80" || got.ce["source"] != "https://hub.example" {
		t.Errorf("event %v", got.ce)
	}
	// A grouped message names every case it stands for: a department's
	// system opens a work order for each.
	data, _ := got.ce["data"].(map[string]any)
	more, _ := data["more"].([]any)
	if len(more) != 1 || more[0].(map[string]any)["case_id"] != "xuhui-01jz2g93z0ptff52h35j58yj81" || data["count"] != 2.0 {
		t.Errorf("data of a grouped message: %v", data)
	}
	if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") || got.header.Get(IdempotencyHeader) != "n-01" {
		t.Errorf("headers %v", got.header)
	}
	// The wrong secret is refused by the receiver: a 401 is not worth retrying.
	bad := &Webhook{URL: srv.URL, Secret: []byte("guess"), Client: srv.Client()}
	outcome(t, bad.Notify(context.Background(), sample(false)), false, 0, false)
}

func TestVerifyRefusesOldAndAlteredDeliveries(t *testing.T) {
	secret, body, now := []byte("k"), []byte(`{"a":1}`), time.Unix(1_750_000_000, 0)
	ts := "1750000000"
	sig := Sign(secret, ts, body)
	if !Verify(secret, sig, ts, body, now, 5*time.Minute) {
		t.Fatal("a fresh delivery is refused")
	}
	if Verify(secret, sig, ts, []byte(`{"a":2}`), now, 5*time.Minute) {
		t.Error("an altered body passes")
	}
	if Verify(secret, sig, ts, body, now.Add(6*time.Minute), 5*time.Minute) {
		t.Error("a replay after the window passes")
	}
}

func TestHTTPAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		retry  bool
		after  time.Duration
		gone   bool
	}{
		{"server error", 500, nil, true, 0, false},
		{"too many requests", 429, map[string]string{"Retry-After": "7"}, true, 7 * time.Second, false},
		{"unavailable with a date", 503, map[string]string{"Retry-After": time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)}, true, MaxRetryAfter, false},
		{"gone", 410, nil, false, 0, true},
		{"bad request", 400, nil, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte("no"))
			}))
			defer srv.Close()
			w := &Webhook{URL: srv.URL, Secret: []byte("k"), Client: srv.Client()}
			outcome(t, w.Notify(context.Background(), sample(false)), tc.retry, tc.after, tc.gone)
		})
	}
	t.Run("no answer in time", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		defer srv.Close()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		w := &Webhook{URL: srv.URL, Secret: []byte("k"), Client: srv.Client()}
		outcome(t, w.Notify(ctx, sample(false)), true, 0, false)
	})
	t.Run("the robot's key never shows in an error", func(t *testing.T) {
		r := &WeCom{URL: "http://127.0.0.1:1/cgi-bin/webhook/send?key=SECRET-KEY", Client: http.DefaultClient}
		err := r.Notify(context.Background(), sample(false))
		if err == nil || strings.Contains(err.Error(), "SECRET-KEY") {
			t.Errorf("error %v", err)
		}
	})
}

// robot is a group robot's endpoint: it records the requests and answers
// with the next of answers.
type robot struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  []map[string]any
	answers []string
}

func (rb *robot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &body)
	rb.reqs, rb.bodies = append(rb.reqs, r), append(rb.bodies, body)
	answer := rb.answers[0]
	if len(rb.answers) > 1 {
		rb.answers = rb.answers[1:]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(answer))
}

func TestWeCom(t *testing.T) {
	rb := &robot{answers: []string{`{"errcode":0,"errmsg":"ok"}`}}
	srv := httptest.NewServer(rb)
	defer srv.Close()
	r := &WeCom{URL: srv.URL + "/cgi-bin/webhook/send?key=k", Client: srv.Client()}
	if err := r.Notify(context.Background(), sample(true)); err != nil {
		t.Fatal(err)
	}
	if len(rb.bodies) != 2 || rb.bodies[0]["msgtype"] != "markdown" || rb.bodies[1]["msgtype"] != "text" {
		t.Fatalf("bodies %v", rb.bodies)
	}
	if m := rb.bodies[1]["text"].(map[string]any)["mentioned_mobile_list"].([]any); m[0] != "13800000001" {
		t.Errorf("mentions %v", m)
	}
	rb.answers = []string{`{"errcode":45009,"errmsg":"api freq out of limit"}`}
	outcome(t, r.Notify(context.Background(), sample(false)), true, robotBackoff, false)
	rb.answers = []string{`{"errcode":93000,"errmsg":"invalid webhook url"}`}
	outcome(t, r.Notify(context.Background(), sample(false)), false, 0, false)
	rb.answers = []string{`<html>proxy error</html>`}
	outcome(t, r.Notify(context.Background(), sample(false)), true, 0, false)
}

func TestDingTalkSignsAndMentions(t *testing.T) {
	rb := &robot{answers: []string{`{"errcode":0,"errmsg":"ok"}`}}
	srv := httptest.NewServer(rb)
	defer srv.Close()
	at := time.UnixMilli(1_750_000_000_123)
	r := &DingTalk{URL: srv.URL + "/robot/send?access_token=t", Secret: "SECabc", Client: srv.Client(), Now: func() time.Time { return at }}
	if err := r.Notify(context.Background(), sample(true)); err != nil {
		t.Fatal(err)
	}
	q := rb.reqs[0].URL.Query()
	if q.Get("access_token") != "t" || q.Get("timestamp") != "1750000000123" || q.Get("sign") != DingTalkSign("SECabc", "1750000000123") {
		t.Errorf("query %v", q)
	}
	if at := rb.bodies[0]["at"].(map[string]any)["atMobiles"].([]any); at[0] != "13800000001" {
		t.Errorf("at %v", at)
	}
	rb.answers = []string{`{"errcode":130101,"errmsg":"send too fast"}`}
	outcome(t, r.Notify(context.Background(), sample(false)), true, robotBackoff, false)
	rb.answers = []string{`{"errcode":310000,"errmsg":"sign not match"}`}
	outcome(t, r.Notify(context.Background(), sample(false)), false, 0, false)
}

func TestFeishuSigns(t *testing.T) {
	rb := &robot{answers: []string{`{"code":0,"msg":"success","data":{}}`}}
	srv := httptest.NewServer(rb)
	defer srv.Close()
	r := &Feishu{URL: srv.URL + "/open-apis/bot/v2/hook/x", Secret: "fs", Client: srv.Client(), Now: func() time.Time { return time.Unix(1_750_000_000, 0) }}
	if err := r.Notify(context.Background(), sample(true)); err != nil {
		t.Fatal(err)
	}
	b := rb.bodies[0]
	if b["timestamp"] != "1750000000" || b["sign"] != FeishuSign("fs", "1750000000") || b["msg_type"] != "text" {
		t.Errorf("body %v", b)
	}
	rb.answers = []string{`{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`}
	outcome(t, r.Notify(context.Background(), sample(false)), false, 0, false)
	rb.answers = []string{`{"code":11232,"msg":"frequency limited"}`}
	outcome(t, r.Notify(context.Background(), sample(false)), true, robotBackoff, false)
}

// The signatures as the platforms document them, computed once outside Go
// (Python's hmac, following each platform's published example):
// a change in the algorithm fails here even if both sides of a test move.
func TestRobotSignaturesAreThePlatforms(t *testing.T) {
	if got := DingTalkSign("SEC000", "1700000000000"); got != "ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA=" {
		t.Errorf("DingTalkSign = %s", got)
	}
	if got := FeishuSign("fs000", "1700000000"); got != "2Cjp6pVLMjLwAwLSlUYVBcxhqA6aekyu73VnOzJ9Ntg=" {
		t.Errorf("FeishuSign = %s", got)
	}
}

func TestSMSGateway(t *testing.T) {
	var body map[string]string
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Write([]byte(`{"result":"ok"}`))
	}))
	defer srv.Close()
	tpl := template.Must(template.New("body").Parse(`{"mobile": "{{ .To }}", "content": "{{ .Text }}"}`))
	s := &SMS{URL: srv.URL, Method: "POST", ContentType: "application/json", Body: tpl, Header: http.Header{"Authorization": {"Bearer gw"}}, Client: srv.Client()}
	if err := s.Notify(context.Background(), sample(true)); err != nil {
		t.Fatal(err)
	}
	if body["mobile"] != "13800000001" || !strings.Contains(body["content"], `"立即"`) || auth != "Bearer gw" {
		t.Errorf("body %v auth %q", body, auth)
	}
	outcome(t, s.Notify(context.Background(), sample(false)), false, 0, false) // nobody to text
}

func TestInboxKeepsEachNotificationOnce(t *testing.T) {
	b := NewInbox(2)
	for _, id := range []string{"a", "b", "b", "c"} {
		n := sample(true)
		n.ID = id
		b.Notify(context.Background(), n)
	}
	items := b.Items()
	if len(items) != 2 || items[0].ID != "c" || items[1].ID != "b" || items[0].Person != "张伟" {
		t.Errorf("items %+v", items)
	}
}
