package receiver

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Inbox keeps the newest messages in memory, for the hub's /dev/inbox page:
// what the embedded hub would have sent, and through which receiver. It is
// safe for concurrent use.
type Inbox struct {
	mu    sync.Mutex
	items []InboxItem
	max   int
}

// InboxItem is one message kept.
type InboxItem struct {
	ID       string    `json:"id"`
	Receiver string    `json:"receiver"`
	Change   string    `json:"change"`
	CaseID   string    `json:"case_id,omitempty"`
	AlertID  string    `json:"alert_id,omitempty"`
	Person   string    `json:"person,omitempty"`
	Title    string    `json:"title"`
	Text     string    `json:"text"`
	AckURL   string    `json:"ack_url,omitempty"`
	At       time.Time `json:"at"`
}

// NewInbox returns an inbox that keeps the newest max messages.
func NewInbox(max int) *Inbox { return &Inbox{max: max} }

// Notify implements Notifier: it keeps n, once per id.
func (b *Inbox) Notify(_ context.Context, n *Notification) error {
	it := InboxItem{ID: n.ID, Receiver: n.Receiver, Change: n.Message.Change, Title: n.Rendered.Title, Text: n.Rendered.Text, AckURL: n.Message.AckURL, At: time.Now().UTC()}
	if c := n.Message.Case; c != nil {
		it.CaseID = c.ID
	}
	if a := n.Message.Alert; a != nil {
		it.AlertID = a.ID
	}
	if p := n.Message.Person; p != nil {
		it.Person = p.Name
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if slices.ContainsFunc(b.items, func(x InboxItem) bool { return x.ID == it.ID }) {
		return nil
	}
	b.items = append(b.items, it)
	if len(b.items) > b.max {
		b.items = slices.Delete(b.items, 0, len(b.items)-b.max)
	}
	return nil
}

// Items returns the messages kept, the newest first.
func (b *Inbox) Items() []InboxItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.items)
	slices.Reverse(out)
	return out
}
