package cap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	cityhubv1 "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/stream"
)

// The feed's keys in Redis. They share one hash tag, so the script that
// changes them runs on one slot of a Redis Cluster.
//
//	cityhub:cap:{feed}:entries   list: the feed's message identifiers, newest first, at most Feed.Size
//	cityhub:cap:{feed}:messages  hash: identifier → the message (JSON, the CAP XML inside)
//	cityhub:cap:{feed}:alert:ID  hash: what was published of alert ID — version, open, severity, refs
const (
	EntriesKey  = "cityhub:cap:{feed}:entries"
	MessagesKey = "cityhub:cap:{feed}:messages"
)

// AlertKey returns the key of what was published of one alert.
func AlertKey(alertID string) string { return "cityhub:cap:{feed}:alert:" + alertID }

// ClosedTTL is how long the state of an alert whose warning was cancelled
// is kept: long enough that a redelivered old change is recognised; the
// state of an open warning is kept until it is cancelled.
const ClosedTTL = 7 * 24 * time.Hour

// Message is one CAP message of the feed.
type Message struct {
	Identifier string    `json:"identifier"`
	Sent       time.Time `json:"sent"`
	MsgType    string    `json:"msg_type"`
	Status     string    `json:"status"`
	Scope      string    `json:"scope"`
	Headline   string    `json:"headline,omitempty"`
	Event      string    `json:"event,omitempty"`
	AlertID    string    `json:"alert_id"`
	// XML is the CAP document, without the XML declaration.
	XML string `json:"xml"`
}

// public reports whether anyone may read m: an Actual, Public message.
func (m *Message) public() bool { return m.Status == "Actual" && m.Scope == "Public" }

// PublisherOptions configures a Publisher.
type PublisherOptions struct {
	// Config's Feed says who the city is as a CAP sender; Feed.Sender is
	// required.
	Config  *Config
	Catalog *catalog.Catalog
	Redis   redis.UniversalClient
	// Publishes says whether an alert's rule publishes its alerts as CAP.
	// Nil publishes none. Alerts of shadow rules are never published.
	Publishes  func(*cityhubv1.Alert) bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now stands in for an alert's missing updated_at; time.Now when nil.
	Now func() time.Time
}

// Publisher folds the city's alerts into the CAP feed: the first firing
// of an alert is an Alert message, a firing at a higher severity than last
// published an Update, its resolution a Cancel; the Update and the Cancel
// reference the messages before them. A change at or below the version
// already folded changes nothing, so redelivered alerts are harmless. It
// is safe for concurrent use, also by several replicas.
type Publisher struct {
	opts    PublisherOptions
	feed    *Feed
	loc     *time.Location
	log     *slog.Logger
	metrics *publisherMetrics
}

type publisherMetrics struct {
	published *prometheus.CounterVec
}

// NewPublisher checks opts and returns a Publisher.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	var errs []error
	switch {
	case opts.Config == nil:
		errs = append(errs, errors.New("no configuration"))
	case opts.Config.Feed.Sender == "":
		errs = append(errs, errors.New("cap.yaml names no feed.sender"))
	}
	if opts.Catalog == nil {
		errs = append(errs, errors.New("no catalog"))
	}
	if opts.Redis == nil {
		errs = append(errs, errors.New("no Redis client"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cap publisher: %w", err)
	}
	if opts.Publishes == nil {
		opts.Publishes = func(*cityhubv1.Alert) bool { return false }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	loc := time.UTC
	if cal := opts.Catalog.Calendar; cal != nil && cal.Location() != nil {
		loc = cal.Location()
	} else if l, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		loc = l
	}
	f := promauto.With(opts.Registerer)
	return &Publisher{
		opts: opts,
		feed: &opts.Config.Feed,
		loc:  loc,
		log:  opts.Logger.With("component", "cap-publisher"),
		metrics: &publisherMetrics{
			published: f.NewCounterVec(prometheus.CounterOpts{
				Name: "cityhub_cap_messages_published_total",
				Help: "CAP messages added to the city's feed, by message type (Alert, Update, Cancel).",
			}, []string{"msg_type"}),
		},
	}, nil
}

// Apply folds a batch of alerts in order, as a stream.Consumer's Apply: an
// alert that cannot become a valid CAP message is rejected (dead-lettered)
// alone; a Redis failure fails the batch, to be applied again.
func (p *Publisher) Apply(ctx context.Context, batch []stream.Record[*cityhubv1.Alert]) error {
	rejected := stream.Rejected{}
	for i, r := range batch {
		if err := p.Fold(ctx, r.Value); err != nil {
			if !stream.IsPermanent(err) {
				return err
			}
			rejected[i] = err
		}
	}
	if len(rejected) > 0 {
		return rejected
	}
	return nil
}

// published is what the feed holds of one alert.
type published struct {
	version  int64
	open     bool
	severity cityhubv1.Severity
	// refs are the messages of the open warning, oldest first, as CAP
	// references.
	refs []string
}

// maxAttempts bounds the retries of a fold that raced another replica.
const maxAttempts = 8

// Fold folds one change of an alert into the feed. A permanent error
// (stream.IsPermanent) means the alert cannot become a valid message.
func (p *Publisher) Fold(ctx context.Context, a *cityhubv1.Alert) error {
	if a == nil || a.GetShadow() || !p.opts.Publishes(a) {
		return nil
	}
	if a.GetId() == "" || !plainName(a.GetId()) {
		return stream.Permanent(fmt.Errorf("cap publisher: alert id %q cannot name a CAP message", clip(a.GetId())))
	}
	for range maxAttempts {
		cur, found, err := p.load(ctx, a.GetId())
		if err != nil {
			return err
		}
		if found && cur.version >= a.GetVersion() {
			return nil // folded already
		}
		next, msg, err := p.decide(cur, a)
		if err != nil {
			return stream.Permanent(err)
		}
		if !found && msg == nil {
			return nil // nothing published of it, nothing to publish
		}
		ok, err := p.store(ctx, a.GetId(), cur, found, next, msg)
		if err != nil {
			return err
		}
		if ok {
			if msg != nil {
				p.metrics.published.WithLabelValues(msg.MsgType).Inc()
			}
			return nil
		}
		// Another replica folded a change of this alert meanwhile: look again.
	}
	return fmt.Errorf("cap publisher: alert %s kept changing under %d attempts", a.GetId(), maxAttempts)
}

func (p *Publisher) load(ctx context.Context, id string) (published, bool, error) {
	m, err := p.opts.Redis.HGetAll(ctx, AlertKey(id)).Result()
	if err != nil {
		return published{}, false, fmt.Errorf("cap publisher: reading alert %s: %w", id, err)
	}
	if len(m) == 0 {
		return published{}, false, nil
	}
	v, err := strconv.ParseInt(m["version"], 10, 64)
	if err != nil {
		return published{}, false, fmt.Errorf("cap publisher: alert %s: version %q: %w", id, m["version"], err)
	}
	sev, _ := strconv.Atoi(m["severity"])
	return published{
		version:  v,
		open:     m["open"] == "1",
		severity: cityhubv1.Severity(sev),
		refs:     strings.Fields(m["refs"]),
	}, true, nil
}

// decide returns what the feed holds of the alert after change a, and the
// message a adds (nil when none).
func (p *Publisher) decide(cur published, a *cityhubv1.Alert) (published, *Alert, error) {
	next := cur
	next.version = a.GetVersion()
	var msgType string
	switch a.GetState() {
	case cityhubv1.AlertState_ALERT_STATE_FIRING:
		switch {
		case !cur.open:
			msgType, next.refs = "Alert", nil
		case a.GetSeverity() > cur.severity:
			msgType = "Update"
		}
	case cityhubv1.AlertState_ALERT_STATE_RESOLVED:
		if cur.open {
			msgType = "Cancel"
		}
	}
	if msgType == "" {
		return next, nil, nil
	}
	msg, err := p.message(a, msgType, next.refs)
	if err != nil {
		return cur, nil, err
	}
	if msgType == "Cancel" {
		next.open, next.refs = false, nil
	} else {
		next.open, next.severity = true, a.GetSeverity()
		next.refs = append(slices.Clone(next.refs), Reference{Sender: msg.Sender, Identifier: msg.Identifier, Sent: msg.Sent}.String())
	}
	return next, msg, nil
}

// capSeverity is the CAP severity of an alert's.
func capSeverity(s cityhubv1.Severity) string {
	switch s {
	case cityhubv1.Severity_SEVERITY_EXTREME:
		return "Extreme"
	case cityhubv1.Severity_SEVERITY_SEVERE:
		return "Severe"
	case cityhubv1.Severity_SEVERITY_MODERATE:
		return "Moderate"
	case cityhubv1.Severity_SEVERITY_MINOR:
		return "Minor"
	}
	return "Unknown"
}

// maxHeadlineRunes keeps headlines short enough for a text message, as
// CAP advises.
const maxHeadlineRunes = 160

// message builds the CAP message of change a.
func (p *Publisher) message(a *cityhubv1.Alert, msgType string, refs []string) (*Alert, error) {
	f := p.feed
	when := p.opts.Now()
	if a.GetUpdatedAt() != nil {
		when = a.GetUpdatedAt().AsTime()
	}
	sent := when.In(p.loc).Truncate(time.Second)
	m := &Alert{
		Identifier: fmt.Sprintf("cityhub-%s-%d", a.GetId(), a.GetVersion()),
		Sender:     f.Sender,
		Sent:       sent,
		Status:     "Actual",
		MsgType:    msgType,
		Scope:      "Public",
	}
	for i, r := range refs {
		ref, errs := ParseReferences(r)
		if len(errs) > 0 || len(ref) != 1 {
			return nil, fmt.Errorf("cap publisher: alert %s: stored reference %d %q is unreadable", a.GetId(), i+1, clip(r))
		}
		m.References = append(m.References, ref[0])
	}
	event := a.GetEventType()
	if et, ok := p.opts.Catalog.EventType(a.GetEventType()); ok && et.Name != "" {
		event = et.Name
	}
	if event == "" {
		event = a.GetTitle()
	}
	if event == "" {
		event = a.GetRule()
	}
	if event == "" {
		event = "alert"
	}
	category := f.Categories[a.GetEventType()]
	if category == "" {
		category = "Other"
	}
	in := Info{
		Language:    f.Language,
		Categories:  []string{category},
		Event:       validText(event),
		Urgency:     "Immediate",
		Severity:    capSeverity(a.GetSeverity()),
		Certainty:   "Observed",
		SenderName:  validText(f.SenderName),
		Headline:    clipRunes(validText(a.GetTitle()), maxHeadlineRunes),
		Description: validText(a.GetSummary()),
		Web:         f.Web,
		Contact:     f.Contact,
	}
	if a.GetEventType() != "" {
		in.EventCodes = []Value{{Name: "cityhub:event_type", Value: a.GetEventType()}}
	}
	if s := a.GetStartsAt(); s != nil {
		in.Onset = s.AsTime().In(p.loc).Truncate(time.Second)
	}
	if msgType == "Cancel" {
		in.Urgency = "Past"
		in.ResponseTypes = []string{"AllClear"}
		if e := a.GetEndsAt(); e != nil {
			in.Expires = e.AsTime().In(p.loc).Truncate(time.Second)
		}
	}
	in.Areas = []Area{p.area(a)}
	m.Infos = []Info{in}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("cap publisher: alert %s: %w", a.GetId(), err)
	}
	return m, nil
}

// area says where alert a is: its district by name and by the geocode
// cap.yaml maps to that district alone, and a circle around its location.
func (p *Publisher) area(a *cityhubv1.Alert) Area {
	district := a.GetDistrict()
	if district == "" {
		district = a.GetLocation().GetDistrict()
	}
	desc := district
	if d, ok := p.opts.Catalog.District(district); ok && d.Name != "" {
		desc = d.Name
	}
	if loc := a.GetLocation(); loc != nil {
		if place := strings.TrimSpace(loc.GetStreet() + " " + loc.GetAddress()); place != "" {
			desc += " " + place
		}
	}
	if desc == "" {
		desc = "-"
	}
	ar := Area{Desc: validText(desc)}
	if loc := a.GetLocation(); loc != nil && (loc.GetLat() != 0 || loc.GetLon() != 0) {
		c := Circle{Centre: Point{Lat: loc.GetLat(), Lon: loc.GetLon()}, RadiusKM: p.feed.RadiusKM}
		if c.Centre.check() == nil {
			ar.Circles = []Circle{c}
		}
	}
	for _, g := range p.opts.Config.Geocodes {
		for _, code := range sortedKeys(g.Values) {
			if ds := g.Values[code]; len(ds) == 1 && ds[0] == district {
				ar.Geocodes = append(ar.Geocodes, Value{Name: g.ValueName, Value: code})
				break
			}
		}
	}
	return ar
}

// validText drops what XML cannot carry and the whitespace around s, as
// Parse would read it back.
func validText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= utf8.MaxRune) {
			return r
		}
		return -1
	}, s)
	return strings.Trim(s, " \t\r\n")
}

// storeScript writes what the feed holds of an alert, and adds its new
// message, unless another fold got there first: it checks that the stored
// version is still the one the decision was made on (go-redis may run a
// script twice when a reply is lost; the second run finds the version
// moved and changes nothing).
//
// KEYS: alert, entries, messages. ARGV: expected version ("" for none),
// version, open, severity, refs, ttl seconds (0 keeps the state),
// identifier ("" for no message), message JSON, feed size.
var storeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'version') or ''
if cur ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'open', ARGV[3], 'severity', ARGV[4], 'refs', ARGV[5])
if ARGV[6] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
if ARGV[7] ~= '' and redis.call('HSETNX', KEYS[3], ARGV[7], ARGV[8]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[7])
  local size = tonumber(ARGV[9])
  for _, id in ipairs(redis.call('LRANGE', KEYS[2], size, -1)) do
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('LTRIM', KEYS[2], 0, size - 1)
end
return 1
`)

func (p *Publisher) store(ctx context.Context, id string, cur published, found bool, next published, msg *Alert) (bool, error) {
	expected := ""
	if found {
		expected = strconv.FormatInt(cur.version, 10)
	}
	open, ttl := "0", int64(ClosedTTL/time.Second)
	if next.open {
		open, ttl = "1", 0
	}
	ident, record := "", []byte(nil)
	if msg != nil {
		x, err := marshalElement(msg)
		if err != nil {
			return false, stream.Permanent(fmt.Errorf("cap publisher: alert %s: %w", id, err))
		}
		ident = msg.Identifier
		record, err = json.Marshal(Message{
			Identifier: msg.Identifier,
			Sent:       msg.Sent,
			MsgType:    msg.MsgType,
			Status:     msg.Status,
			Scope:      msg.Scope,
			Headline:   msg.Infos[0].Headline,
			Event:      msg.Infos[0].Event,
			AlertID:    id,
			XML:        string(x),
		})
		if err != nil {
			return false, stream.Permanent(fmt.Errorf("cap publisher: alert %s: %w", id, err))
		}
	}
	n, err := storeScript.Run(ctx, p.opts.Redis,
		[]string{AlertKey(id), EntriesKey, MessagesKey},
		expected, next.version, open, int(next.severity), strings.Join(next.refs, " "), ttl, ident, record, p.feed.Size,
	).Int()
	if err != nil {
		return false, fmt.Errorf("cap publisher: storing alert %s: %w", id, err)
	}
	return n == 1, nil
}

// Messages returns the feed's public messages, newest first.
func (p *Publisher) Messages(ctx context.Context) ([]Message, error) {
	ids, err := p.opts.Redis.LRange(ctx, EntriesKey, 0, int64(p.feed.Size)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("cap feed: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := p.opts.Redis.HMGet(ctx, MessagesKey, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("cap feed: %w", err)
	}
	out := make([]Message, 0, len(vals))
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // trimmed between the two reads
		}
		var m Message
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, fmt.Errorf("cap feed: a stored message: %w", err)
		}
		if m.public() {
			out = append(out, m)
		}
	}
	return out, nil
}

// ErrNoMessage is returned by Message for an identifier the feed does not
// hold (or holds no longer), or that is not public.
var ErrNoMessage = errors.New("cap feed: no such message")

// Message returns the public message with the given identifier.
func (p *Publisher) Message(ctx context.Context, identifier string) (*Message, error) {
	s, err := p.opts.Redis.HGet(ctx, MessagesKey, identifier).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoMessage
	}
	if err != nil {
		return nil, fmt.Errorf("cap feed: %w", err)
	}
	var m Message
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("cap feed: message %s: %w", identifier, err)
	}
	if !m.public() {
		return nil, ErrNoMessage
	}
	return &m, nil
}
