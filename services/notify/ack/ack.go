// Package ack lets the person a message reached act on it without signing
// in: every message to a person carries a signed, expiring, single-use
// link that shows the case and offers to accept the person's department's
// part or hand it back. The action is a real case action, taken as that
// person for that department through the case service, and the audit says
// through which channel.
//
// A link is base64url(JSON claims) "." base64url(HMAC-SHA256 of the first
// part). The key is the service's own secret: whoever has it can mint links,
// so it never leaves the notify service and the hub.
package ack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Claims are what a link lets its holder do.
type Claims struct {
	// Case and Dept name the part the link acts on.
	Case string `json:"c"`
	Dept string `json:"d"`
	// Person is who the link was sent to; the case's audit names them.
	Person string `json:"p"`
	// Via is the channel the link was sent through (a receiver's name).
	Via string `json:"v"`
	// Expires is when the link stops working (Unix seconds).
	Expires int64 `json:"e"`
	// Nonce tells apart two links to the same person for the same part.
	Nonce string `json:"n"`
}

// Errors of Verify, by meaning.
var (
	// ErrForged is a link that was not signed with the key, or was altered.
	ErrForged = errors.New("this link is not one the hub made")
	// ErrExpired is a link past its time.
	ErrExpired = errors.New("this link has expired")
)

// MaxLinkBytes bounds a link before it is decoded.
const MaxLinkBytes = 1024

// Signer makes and checks links. It is safe for concurrent use.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer with key, which must be at least 32 bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("ack: a key of %d bytes; want at least 32", len(key))
	}
	return &Signer{key: key}, nil
}

var b64 = base64.RawURLEncoding

// DeriveKey derives a link key from another secret (the embedded hub's
// token signing key), so that the hub needs no second secret of its own.
func DeriveKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("cityhub acknowledgement links v1"))
	return m.Sum(nil)
}

// Sign returns the token of c.
func (s *Signer) Sign(c Claims) string {
	b, _ := json.Marshal(c)
	payload := b64.EncodeToString(b)
	return payload + "." + b64.EncodeToString(s.mac(payload))
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

var partRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Verify returns the claims of token when it is the Signer's own and
// unexpired at now.
func (s *Signer) Verify(token string, now time.Time) (Claims, error) {
	var c Claims
	if len(token) > MaxLinkBytes {
		return c, ErrForged
	}
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || !partRE.MatchString(payload) || !partRE.MatchString(sig) {
		return c, ErrForged
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return c, ErrForged
	}
	b, err := b64.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Case == "" || c.Dept == "" || c.Person == "" {
		return Claims{}, ErrForged
	}
	if now.Unix() >= c.Expires {
		return c, ErrExpired
	}
	return c, nil
}

// ID names a token, for its single use and as the request id of the
// action it takes: a hash, so the token itself is stored nowhere.
func ID(token string) string {
	h := sha256.Sum256([]byte(token))
	return b64.EncodeToString(h[:18])
}
