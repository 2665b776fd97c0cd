package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/services/platform/auth"
)

func TestTokenIsAcceptedByTheHubOfTheSameDataDir(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"token", "--data", dir, "--rules", rules, "--role", "department", "--dept", "water-affairs", "--districts", "xuhui,pudong"}, &out, io.Discard)
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

// rules is the repository's rules directory, whose catalog tokens are checked against.
const rules = "../../../../rules"

func TestSourceTokenSpeaksForItsSources(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "--data", t.TempDir(), "--rules", rules, "--role", "source", "--sources", "video,hotline"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	claims, err := base64.RawURLEncoding.DecodeString(strings.Split(lines[len(lines)-1], ".")[1])
	if err != nil || !strings.Contains(string(claims), `"sources":["video","hotline"]`) {
		t.Errorf("claims %s (%v)", claims, err)
	}
}

func TestTokenRefusals(t *testing.T) {
	for name, args := range map[string][]string{
		"no role":                      {"token"},
		"unknown role":                 {"token", "--role", "mayor"},
		"department without one":       {"token", "--role", "department"},
		"unknown department":           {"token", "--role", "department", "--dept", "ghost-bureau"},
		"unknown district":             {"token", "--role", "dispatcher", "--districts", "xuhui,atlantis"},
		"source without sources":       {"token", "--role", "source"},
		"viewer speaking for a source": {"token", "--role", "viewer", "--sources", "iot"},
		"unknown command":              {"launch"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append(args, "--data", t.TempDir(), "--rules", rules)
			if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("run %v succeeded", args)
			}
		})
	}
}
