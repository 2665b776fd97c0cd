package receiver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// mailbox is a real SMTP server on loopback that keeps what it receives.
type mailbox struct {
	mu   sync.Mutex
	msgs []received
	// refuse, when set, is the reply to RCPT TO.
	refuse *smtp.SMTPError
}

type received struct {
	from string
	to   []string
	data []byte
}

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{m: m}, nil }

type session struct {
	m   *mailbox
	cur received
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.m.refuse != nil {
		return s.m.refuse
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.m.mu.Lock()
	s.m.msgs = append(s.m.msgs, s.cur)
	s.m.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

// startMailbox serves m on loopback, offering STARTTLS with a certificate
// for 127.0.0.1 that the returned pool trusts.
func startMailbox(t *testing.T, m *mailbox) (addr string, pool *x509.CertPool) {
	t.Helper()
	cert, pool := selfSigned(t)
	srv := smtp.NewServer(m)
	srv.Domain = "mail.city.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), pool
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestEmailOverSTARTTLS(t *testing.T) {
	m := &mailbox{}
	addr, pool := startMailbox(t, m)
	e := &Email{Smarthost: addr, From: "城市运行 <cityhub@city.example>", To: []string{"duty@gas.example"}, TLS: "starttls",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Notify(ctx, sample(true)); err != nil { // paged: to the person
		t.Fatal(err)
	}
	if err := e.Notify(ctx, sample(false)); err != nil { // to the fixed address
		t.Fatal(err)
	}
	if len(m.msgs) != 2 || m.msgs[0].to[0] != "zhang@gas.example" || m.msgs[1].to[0] != "duty@gas.example" || m.msgs[0].from != "cityhub@city.example" {
		t.Fatalf("received %+v", m.msgs)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(m.msgs[0].data)))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	body, _ := io.ReadAll(msg.Body)
	if subject != "燃气泄漏 天平路" || msg.Header.Get("Message-Id") != "<n-01@cityhub>" || !strings.Contains(string(body), "=E8=AF=B7") {
		t.Errorf("subject %q, id %q, body %q", subject, msg.Header.Get("Message-Id"), body)
	}
}

func TestEmailReplies(t *testing.T) {
	m := &mailbox{refuse: &smtp.SMTPError{Code: 452, Message: "mailbox full, try later"}}
	addr, _ := startMailbox(t, m)
	e := &Email{Smarthost: addr, From: "cityhub@city.example", To: []string{"duty@gas.example"}, TLS: "none"}
	outcome(t, e.Notify(context.Background(), sample(false)), true, 0, false)
	m.refuse = &smtp.SMTPError{Code: 550, Message: "no such user"}
	outcome(t, e.Notify(context.Background(), sample(false)), false, 0, false)
	// A server that does not offer STARTTLS is not written to in the clear.
	e.TLS = "starttls"
	srv := smtp.NewServer(&mailbox{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	defer func() { srv.Close(); <-done }()
	e.Smarthost = ln.Addr().String()
	outcome(t, e.Notify(context.Background(), sample(false)), false, 0, false)
	// Nobody listening: worth another try.
	e.Smarthost = "127.0.0.1:1"
	outcome(t, e.Notify(context.Background(), sample(false)), true, 0, false)
}
