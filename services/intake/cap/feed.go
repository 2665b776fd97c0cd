package cap

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cityhub/cityhub/services/platform/httperr"
)

// Paths of the feed.
const (
	FeedPath     = "/v1/cap/feed.atom"
	MessagesPath = "/v1/cap/messages/"
)

// AtomNamespace is the XML namespace of Atom 1.0 (RFC 4287).
const AtomNamespace = "http://www.w3.org/2005/Atom"

// Routes registers the feed and its messages on mux. Both are public, as
// public warnings are: no token is asked for.
func (p *Publisher) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+FeedPath, p.serveFeed)
	mux.HandleFunc("GET "+MessagesPath+"{file}", p.serveMessage)
}

type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomPerson  `xml:"author"`
	Links   []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

type atomEntry struct {
	ID         string         `xml:"id"`
	Title      string         `xml:"title"`
	Updated    string         `xml:"updated"`
	Published  string         `xml:"published"`
	Categories []atomCategory `xml:"category"`
	Links      []atomLink     `xml:"link"`
	Content    atomContent    `xml:"content"`
}

// atomContent carries the CAP message inline: an XML media type, so the
// alert element is the content's child (RFC 4287 §4.1.3.3).
type atomContent struct {
	Type  string `xml:"type,attr"`
	Inner string `xml:",innerxml"`
}

// link returns path as the feed links to it.
func (p *Publisher) link(path string) string { return p.feed.BaseURL + path }

// MessageURL returns the path (or URL, with a base_url) of a message.
func (p *Publisher) MessageURL(identifier string) string {
	return p.link(MessagesPath + url.PathEscape(identifier) + ".xml")
}

// Feed returns the Atom document of the feed's public messages, newest
// first, each inline and linked.
func (p *Publisher) Feed(ctx context.Context) ([]byte, error) {
	msgs, err := p.Messages(ctx)
	if err != nil {
		return nil, err
	}
	f := atomFeed{
		ID:      p.feed.ID,
		Title:   p.feed.Title,
		Updated: p.opts.Now().UTC().Format(time.RFC3339),
		Author:  atomPerson{Name: firstNonEmpty(p.feed.SenderName, p.feed.Sender)},
		Links: []atomLink{
			{Rel: "self", Type: "application/atom+xml", Href: p.link(FeedPath)},
		},
	}
	if len(msgs) > 0 {
		f.Updated = msgs[0].Sent.UTC().Format(time.RFC3339)
	}
	for _, m := range msgs {
		title := m.Headline
		if title == "" {
			title = m.Event
		}
		if m.MsgType != "Alert" {
			title = m.MsgType + ": " + title
		}
		f.Entries = append(f.Entries, atomEntry{
			ID:         p.feed.ID + ":" + m.Identifier,
			Title:      title,
			Updated:    m.Sent.UTC().Format(time.RFC3339),
			Published:  m.Sent.UTC().Format(time.RFC3339),
			Categories: []atomCategory{{Term: m.MsgType}},
			Links:      []atomLink{{Rel: "alternate", Type: "application/cap+xml", Href: p.MessageURL(m.Identifier)}},
			Content:    atomContent{Type: "application/cap+xml", Inner: m.XML},
		})
	}
	var buf bytes.Buffer
	buf.WriteString(xmlHeader)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	buf.WriteString("\n")
	return buf.Bytes(), nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func (p *Publisher) serveFeed(w http.ResponseWriter, r *http.Request) {
	b, err := p.Feed(r.Context())
	if err != nil {
		p.log.Error("reading the CAP feed failed", "err", err)
		w.Header().Set("Retry-After", "5")
		httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "the feed cannot be read now; try again shortly", nil)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=30")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b) // the client may have gone
}

func (p *Publisher) serveMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutSuffix(r.PathValue("file"), ".xml")
	if !ok || id == "" {
		httperr.Write(w, http.StatusNotFound, "not_found", "messages are at "+MessagesPath+"IDENTIFIER.xml", nil)
		return
	}
	m, err := p.Message(r.Context(), id)
	switch {
	case errors.Is(err, ErrNoMessage):
		httperr.Write(w, http.StatusNotFound, "not_found", "the feed holds no public message "+clip(id), nil)
		return
	case err != nil:
		p.log.Error("reading a CAP message failed", "err", err)
		w.Header().Set("Retry-After", "5")
		httperr.Write(w, http.StatusServiceUnavailable, "unavailable", "the message cannot be read now; try again shortly", nil)
		return
	}
	w.Header().Set("Content-Type", "application/cap+xml; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(xmlHeader + m.XML + "\n"))
}
