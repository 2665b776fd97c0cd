package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/platform/auth"
)

func TestTokenIsAcceptedByTheHubOfTheSameDataDir(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"token", "--data", dir, "--role", "department", "--dept", "water-affairs", "--districts", "xuhui,pudong"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	tok := lines[len(lines)-1]
	key, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("the hub would refuse the token: %v", err)
	}
	if p.Role != auth.RoleDepartment || p.Dept != "water-affairs" || strings.Join(p.Districts, ",") != "xuhui,pudong" {
		t.Errorf("principal = %+v", p)
	}
}

func TestTokenRefusals(t *testing.T) {
	for name, args := range map[string][]string{
		"no role":                {"token"},
		"unknown role":           {"token", "--role", "mayor"},
		"department without one": {"token", "--role", "department"},
		"unknown command":        {"launch"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(args, "--data", t.TempDir())
			if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("run %v succeeded", args)
			}
		})
	}
}
