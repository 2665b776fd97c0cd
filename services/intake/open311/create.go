package open311

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/catalog"
	"github.com/cityhub/cityhub/services/platform/events"
)

// DefaultNotice is the service_notice of a service whose catalog entry
// gives none.
const DefaultNotice = "已受理，可凭编号查询处理进度。"

// IdempotencyHeader is the header a client may send so that retrying a
// report cannot post it twice.
const IdempotencyHeader = "Idempotency-Key"

var idempotencyKeyRE = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// create answers POST requests: the report becomes an event, through
// intake, and is then recorded.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, _ string, f format) int {
	rep, key, probs, rf := h.read(w, r)
	if rf != nil {
		return h.fail(w, f, rf)
	}
	// The jurisdiction and the api_key are answered for before the form's
	// problems, which are nobody's business until the caller is known.
	if rf := h.jurisdiction(rep.Jurisdiction); rf != nil {
		return h.fail(w, f, rf)
	}
	p, source, rf := h.speaker(rep.APIKey)
	if rf != nil {
		return h.fail(w, f, rf)
	}
	if len(probs) > 0 {
		return h.fail(w, f, refuse(http.StatusBadRequest, probs...))
	}
	in, rec, rf := h.translate(rep, source)
	if rf != nil {
		return h.fail(w, f, rf)
	}
	ctx := r.Context()
	if key != "" {
		rec.ID = derivedID(source, key)
		rec.Fingerprint = fingerprint(in)
		got, err := h.opts.Requests.Get(ctx, rec.ID)
		if err != nil {
			return h.fail(w, f, h.unavailable("the request store", err))
		}
		if len(got) > 0 {
			// Recorded already: the event was accepted; answer as then.
			return h.created(w, f, got[0], rec.Fingerprint)
		}
	} else {
		id, err := ulid.New(ulid.Timestamp(rec.Requested), rand.Reader)
		if err != nil {
			return h.fail(w, f, refuse(http.StatusInternalServerError, problemf("", "no id could be made: %v", err)))
		}
		rec.ID = strings.ToLower(id.String())
	}
	in.ID = rec.ID

	if _, err := h.opts.Submit(ctx, Via, p, []*events.Input{in}); err != nil {
		return h.fail(w, f, h.submitRefusal(err))
	}
	// The event is in the log. A request the store cannot record could not
	// be followed: the client is asked to retry, which an Idempotency-Key
	// makes harmless.
	got, _, err := h.opts.Requests.Add(ctx, rec)
	if err != nil {
		return h.fail(w, f, h.unavailable("the request store", err))
	}
	return h.created(w, f, got, rec.Fingerprint)
}

// created answers a POST with the request recorded under its id; a
// fingerprint that is not the recorded one means the Idempotency-Key was
// sent before with another report.
func (h *Handler) created(w http.ResponseWriter, f format, got Request, fp string) int {
	if fp != "" && got.Fingerprint != fp {
		return h.fail(w, f, refuse(http.StatusConflict, problemf(IdempotencyHeader, "this key came before with another report (service_request_id %s); use a new key for a new report", got.ID)))
	}
	return write(w, f, http.StatusOK, createdList{Requests: []createdDoc{{ID: got.ID, ServiceNotice: text(got.Notice)}}})
}

// read checks the media type and size of a POST and decodes its form and
// Idempotency-Key. A form with problems is returned with them.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) (*report, string, []problem, *refusal) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, "", nil, refuse(http.StatusUnsupportedMediaType, problem{message: "send the request as Content-Type: application/x-www-form-urlencoded; charset=utf-8"})
	}
	if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
		return nil, "", nil, refuse(http.StatusUnsupportedMediaType, problemf("", "charset %s: send UTF-8", clip(cs)))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "", nil, refuse(http.StatusRequestEntityTooLarge, problemf("", "a request carries at most %d bytes", MaxBodyBytes))
		}
		return nil, "", nil, refuse(http.StatusBadRequest, problemf("", "reading the body: %v", err))
	}
	rep, probs := decodeRequest(body)
	if rep == nil {
		return nil, "", nil, refuse(http.StatusBadRequest, probs...)
	}
	key := r.Header.Get(IdempotencyHeader)
	if key != "" && !idempotencyKeyRE.MatchString(key) {
		probs = append(probs, problem{IdempotencyHeader, "want 1 to 255 printable ASCII characters"})
	}
	return rep, key, probs, nil
}

// speaker verifies the api_key and returns who posts, and as which
// source: a source token's only source, or open311 among several; a
// commander posts as open311.
func (h *Handler) speaker(apiKey string) (auth.Principal, string, *refusal) {
	if apiKey == "" {
		return auth.Principal{}, "", refuse(http.StatusForbidden, problem{"api_key", "required: a cityhub source token"})
	}
	p, err := h.opts.Verifier.Verify(apiKey)
	if err != nil {
		return auth.Principal{}, "", refuse(http.StatusForbidden, problemf("api_key", "refused: %v", err))
	}
	switch p.Role {
	case auth.RoleCommander:
		return *p, Source, nil
	case auth.RoleSource:
		switch {
		case len(p.Sources) == 1:
			return *p, p.Sources[0], nil
		case slices.Contains(p.Sources, Source):
			return *p, Source, nil
		}
		return auth.Principal{}, "", refuse(http.StatusForbidden, problemf("api_key", "the key speaks for several sources (%s) and not for %s: use a key of one source", strings.Join(p.Sources, ", "), Source))
	}
	return auth.Principal{}, "", refuse(http.StatusForbidden, problemf("api_key", "a %s key may not post requests; use a source key", p.Role))
}

// translate builds the event a report becomes, and the record kept of it
// (without its id, which is given later). It checks the report against its
// service: the answers to its questions, and a place in a district.
func (h *Handler) translate(rep *report, source string) (*events.Input, Request, *refusal) {
	t, ok := h.types[rep.ServiceCode]
	if !ok {
		return nil, Request{}, refuse(http.StatusNotFound, problemf("service_code", "%q not found; GET services lists the services", clip(rep.ServiceCode)))
	}
	attrs, chosen, probs := answers(t, rep.Attributes, h.zone)
	district, more := h.placer.place(chosen, rep)
	if probs = append(probs, more...); len(probs) > 0 {
		return nil, Request{}, refuse(http.StatusBadRequest, probs...)
	}
	if rep.MediaURL != "" {
		attrs["media_url"] = rep.MediaURL
	}
	if slices.Contains(rep.Personal, "email") || slices.Contains(rep.Personal, "phone") {
		// The reporting system can reach the reporter; the hub keeps no
		// way to.
		attrs["contact_given"] = true
	}
	now := h.opts.Now()
	in := &events.Input{
		Source:     source,
		Type:       t.Code,
		OccurredAt: now.Format(time.RFC3339Nano),
		Location:   &events.LocationInput{Lon: rep.Long, Lat: rep.Lat, District: district, Address: rep.Address},
		Text:       rep.Description,
		Attrs:      attrs,
	}
	notice := t.Report.Notice
	if notice == "" {
		notice = DefaultNotice
	}
	rec := Request{
		Source:      source,
		ServiceCode: t.Code,
		ServiceName: t.Report.ServiceName,
		Requested:   now,
		Lat:         rep.Lat,
		Long:        rep.Long,
		Address:     rep.Address,
		District:    district,
		Description: rep.Description,
		MediaURL:    rep.MediaURL,
		Notice:      notice,
	}
	return in, rec, nil
}

// submitRefusal answers an error of Submit: intake's refusal of the event,
// field by field in the form's names, or the event log out of reach.
func (h *Handler) submitRefusal(err error) *refusal {
	var be *events.BatchError
	switch {
	case errors.As(err, &be):
		var probs []problem
		for _, item := range be.Items {
			for _, fe := range item.Errors {
				probs = append(probs, problem{formField(fe.Field), fe.Message})
			}
		}
		return refuse(http.StatusBadRequest, probs...)
	case errors.Is(err, events.ErrMalformed):
		return refuse(http.StatusBadRequest, problemf("", "%v", err))
	case h.opts.Unavailable == nil || errors.Is(err, h.opts.Unavailable):
		return h.unavailable("the event log", err)
	}
	h.logFailure("submitting a report failed; answering 500", err)
	return refuse(http.StatusInternalServerError, problem{message: "the report could not be taken"})
}

// formField names the form field an event field came from.
func formField(field string) string {
	switch field {
	case "text":
		return "description"
	case "type":
		return "service_code"
	case "source":
		return "api_key"
	case "location", "location.lat":
		return "lat"
	case "location.lon":
		return "long"
	case "location.address":
		return "address_string"
	case "location.district":
		return "attribute[" + catalog.ReservedReportCode + "]"
	case "attrs.media_url":
		return "media_url"
	}
	if name, ok := strings.CutPrefix(field, "attrs."); ok {
		return "attribute[" + name + "]"
	}
	return field
}

// derivedID is the request id of a report sent with an Idempotency-Key:
// the same for the same key from the same source, shaped like the ids the
// hub assigns (26 lower-case Crockford base32 characters).
func derivedID(source, key string) string {
	sum := sha256.Sum256([]byte("open311\x00" + source + "\x00" + key))
	var id ulid.ULID
	copy(id[:], sum[:len(id)])
	return strings.ToLower(id.String())
}

// fingerprint identifies what a report says, to tell a retry from another
// report under the same Idempotency-Key. It leaves out the time it was
// made, which differs between tries.
func fingerprint(in *events.Input) string {
	b, _ := json.Marshal(struct {
		Type     string                `json:"type"`
		Location *events.LocationInput `json:"location"`
		Text     string                `json:"text"`
		Attrs    map[string]any        `json:"attrs"`
	}{in.Type, in.Location, in.Text, in.Attrs})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
