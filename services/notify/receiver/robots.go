package receiver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Group robots answer 200 with an error code in the body. The codes below
// mean "too many messages, slow down" and are worth a retry; any other
// non-zero code is not.
const (
	wecomRateLimited    = 45009  // api freq out of limit
	dingtalkRateLimited = 130101 // send too fast
	feishuRateLimited   = 11232  // frequency limited
)

// robotBackoff is how long a rate-limited robot is left alone: they count
// messages per minute.
const robotBackoff = time.Minute

// WeCom posts to a WeCom (企业微信) group robot: a markdown message, and a
// text that mentions the person paged by mobile number (markdown cannot
// mention). The robot's key is in its URL.
type WeCom struct {
	URL    string
	Client *http.Client
}

// Notify implements Notifier.
func (r *WeCom) Notify(ctx context.Context, n *Notification) error {
	content := "**" + n.Rendered.Title + "**\n" + n.Rendered.Text
	if err := r.send(ctx, map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": content}}); err != nil {
		return err
	}
	if p := n.Message.Person; p != nil && p.Phone != "" {
		return r.send(ctx, map[string]any{"msgtype": "text", "text": map[string]any{
			"content": p.Name + "：" + n.Rendered.Title, "mentioned_mobile_list": []string{p.Phone},
		}})
	}
	return nil
}

func (r *WeCom) send(ctx context.Context, msg any) error {
	body, _ := json.Marshal(msg)
	answer, err := post(ctx, r.Client, r.URL, "application/json", body, nil)
	if err != nil {
		return err
	}
	var res struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	return robotAnswer(answer, json.Unmarshal(answer, &res), res.ErrCode, res.ErrMsg, wecomRateLimited)
}

// DingTalk posts to a DingTalk (钉钉) group robot. With a secret, each
// request is signed as DingTalk asks: the millisecond timestamp, a
// newline and the secret, HMAC-SHA256 keyed with the secret, Base64, in
// the URL's timestamp and sign parameters.
type DingTalk struct {
	URL    string
	Secret string
	Client *http.Client
	Now    func() time.Time
}

// Notify implements Notifier.
func (r *DingTalk) Notify(ctx context.Context, n *Notification) error {
	text := "### " + n.Rendered.Title + "\n\n" + n.Rendered.Text
	msg := map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": n.Rendered.Title, "text": text}}
	if p := n.Message.Person; p != nil && p.Phone != "" {
		// A mention shows only when the text names the mobile too.
		msg["markdown"] = map[string]string{"title": n.Rendered.Title, "text": text + "\n\n@" + p.Phone}
		msg["at"] = map[string]any{"atMobiles": []string{p.Phone}}
	}
	target := r.URL
	if r.Secret != "" {
		u, err := url.Parse(r.URL)
		if err != nil {
			return permanent(0, "dingtalk url: %v", err)
		}
		ts := strconv.FormatInt(now(r.Now).UnixMilli(), 10)
		q := u.Query()
		q.Set("timestamp", ts)
		q.Set("sign", DingTalkSign(r.Secret, ts))
		u.RawQuery = q.Encode()
		target = u.String()
	}
	body, _ := json.Marshal(msg)
	answer, err := post(ctx, r.Client, target, "application/json", body, nil)
	if err != nil {
		return err
	}
	var res struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	return robotAnswer(answer, json.Unmarshal(answer, &res), res.ErrCode, res.ErrMsg, dingtalkRateLimited)
}

// DingTalkSign returns the sign parameter for a millisecond timestamp
// (before URL encoding).
func DingTalkSign(secret, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Feishu posts to a Feishu (飞书) group robot. With a secret, each body
// carries timestamp (seconds) and sign as Feishu asks: HMAC-SHA256 keyed
// with the timestamp, a newline and the secret, over nothing, Base64.
type Feishu struct {
	URL    string
	Secret string
	Client *http.Client
	Now    func() time.Time
}

// Notify implements Notifier.
func (r *Feishu) Notify(ctx context.Context, n *Notification) error {
	text := n.Rendered.Title + "\n" + n.Rendered.Text
	if p := n.Message.Person; p != nil {
		text += "\n@" + p.Name
	}
	msg := map[string]any{"msg_type": "text", "content": map[string]string{"text": text}}
	if r.Secret != "" {
		ts := strconv.FormatInt(now(r.Now).Unix(), 10)
		msg["timestamp"] = ts
		msg["sign"] = FeishuSign(r.Secret, ts)
	}
	body, _ := json.Marshal(msg)
	answer, err := post(ctx, r.Client, r.URL, "application/json", body, nil)
	if err != nil {
		return err
	}
	var res struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	return robotAnswer(answer, json.Unmarshal(answer, &res), res.Code, res.Msg, feishuRateLimited)
}

// FeishuSign returns the sign field for a timestamp in seconds.
func FeishuSign(secret, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// robotAnswer turns a robot's 200 answer into an outcome.
func robotAnswer(answer []byte, decodeErr error, code int, msg string, rateLimited int) error {
	switch {
	case decodeErr != nil:
		return transient(0, 0, "the robot answered something that is not its JSON: %s", snippet(answer))
	case code == 0:
		return nil
	case code == rateLimited:
		return transient(code, robotBackoff, "rate limited (%d): %s", code, msg)
	}
	return permanent(code, "refused (%d): %s", code, msg)
}

func now(f func() time.Time) time.Time {
	if f != nil {
		return f()
	}
	return time.Now()
}
