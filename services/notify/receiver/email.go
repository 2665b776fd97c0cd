package receiver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// Email sends through an SMTP server: to the person paged when a paging
// step sends it, else to the receiver's fixed addresses.
type Email struct {
	// Smarthost is host:port.
	Smarthost string
	From      string
	To        []string
	Username  string
	Password  string
	// TLS is none, starttls or tls (implicit TLS, port 465).
	TLS string
	// TLSConfig, when set, replaces the default (which checks the server's
	// certificate against the host name).
	TLSConfig *tls.Config
	// Hostname is what the client says in HELO; "cityhub" when empty.
	Hostname string
	Now      func() time.Time
}

// Notify implements Notifier.
func (e *Email) Notify(ctx context.Context, n *Notification) error {
	to := e.To
	if p := n.Message.Person; p != nil {
		if p.Email == "" {
			return permanent(0, "email: %s has no address", p.Name)
		}
		to = []string{p.Email}
	}
	if len(to) == 0 {
		return permanent(0, "email: nobody to write to")
	}
	msg, err := e.compose(n, to)
	if err != nil {
		return permanent(0, "email: %v", err)
	}
	return e.send(ctx, to, msg)
}

// compose writes the message: UTF-8 subject as RFC 2047 words, a
// quoted-printable text body, and the notification's id as Message-ID so
// that a mail system can drop a redelivered copy.
func (e *Email) compose(n *Notification, to []string) ([]byte, error) {
	from, err := mail.ParseAddress(e.From)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from.String())
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", n.Rendered.Title))
	h("Date", now(e.Now).Format(time.RFC1123Z))
	h("Message-ID", "<"+n.ID+"@cityhub>")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(n.Rendered.Text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// send runs one SMTP session, bounded by ctx.
func (e *Email) send(ctx context.Context, to []string, msg []byte) error {
	host, _, err := net.SplitHostPort(e.Smarthost)
	if err != nil {
		return permanent(0, "email: smarthost: %v", err)
	}
	tlsConfig := e.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.Smarthost)
	if err != nil {
		return transient(0, 0, "email: %v", err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if e.TLS == "tls" {
		conn = tls.Client(conn, tlsConfig)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return smtpError(err)
	}
	defer c.Close()
	hello := e.Hostname
	if hello == "" {
		hello = "cityhub"
	}
	if err := c.Hello(hello); err != nil {
		return smtpError(err)
	}
	if e.TLS == "starttls" {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return permanent(0, "email: %s does not offer STARTTLS; set tls: none to send in the clear", e.Smarthost)
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return smtpError(err)
		}
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return smtpError(err)
		}
	}
	if err := c.Mail(mustAddr(e.From)); err != nil {
		return smtpError(err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(mustAddr(rcpt)); err != nil {
			return smtpError(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError(err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpError(err)
	}
	if err := w.Close(); err != nil {
		return smtpError(err)
	}
	return smtpError(c.Quit())
}

// smtpError classifies an SMTP reply: 4xx may pass, 5xx will not; a
// broken connection may pass.
func smtpError(err error) error {
	if err == nil {
		return nil
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 400 && te.Code < 500 {
			return transient(te.Code, 0, "email: %d %s", te.Code, te.Msg)
		}
		return permanent(te.Code, "email: %d %s", te.Code, te.Msg)
	}
	return transient(0, 0, "email: %v", err)
}

func mustAddr(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return a.Address
	}
	return s
}
