package casestore

import (
	"context"
	"errors"
	"testing"

	"github.com/cityhub/cityhub/services/platform/redistest"
)

func TestEventIndex(t *testing.T) {
	ctx := context.Background()
	s := New(redistest.Start(t).Client, []string{"xuhui", "pudong"})
	if err := s.IndexEvents(ctx, "xuhui", "xuhui-01", []string{"open311/r1", "iot/g1"}); err != nil {
		t.Fatal(err)
	}
	// A later alert of another case with the same event keeps the first.
	if err := s.IndexEvents(ctx, "xuhui", "xuhui-02", []string{"iot/g1", "iot/g2"}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"open311/r1": "xuhui-01", "iot/g1": "xuhui-01", "iot/g2": "xuhui-02"} {
		if got, err := s.CaseOfEvent(ctx, "xuhui", key); err != nil || got != want {
			t.Errorf("CaseOfEvent(%s) = %q, %v; want %s", key, got, err, want)
		}
	}
	if _, err := s.CaseOfEvent(ctx, "pudong", "open311/r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the same key in another district: %v, want ErrNotFound", err)
	}
	if _, err := s.CaseOfEvent(ctx, "{x}", "open311/r1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a district that cannot be a key: %v", err)
	}
	if err := s.IndexEvents(ctx, "{x}", "x-1", []string{"a/b"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("indexing under a bad district: %v", err)
	}
}

func TestAlertIndex(t *testing.T) {
	ctx := context.Background()
	s := New(redistest.Start(t).Client, []string{"xuhui", "pudong"})
	if _, err := s.CaseOfAlert(ctx, "xuhui", "fp-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an alert that opened no case: %v, want ErrNotFound", err)
	}
	if err := s.IndexAlert(ctx, "xuhui", "xuhui-01", "fp-1", []string{"iot/g1"}); err != nil {
		t.Fatal(err)
	}
	// The alert's next episode opens another case: that one is its case now.
	if err := s.IndexAlert(ctx, "xuhui", "xuhui-02", "fp-1", []string{"iot/g2"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CaseOfAlert(ctx, "xuhui", "fp-1"); err != nil || got != "xuhui-02" {
		t.Errorf("CaseOfAlert = %q, %v; want xuhui-02", got, err)
	}
	if got, err := s.CaseOfEvent(ctx, "xuhui", "iot/g1"); err != nil || got != "xuhui-01" {
		t.Errorf("CaseOfEvent(iot/g1) = %q, %v; want xuhui-01", got, err)
	}
	if _, err := s.CaseOfAlert(ctx, "pudong", "fp-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the same alert id in another district: %v, want ErrNotFound", err)
	}
	if err := s.IndexAlert(ctx, "{x}", "x-1", "fp", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("indexing under a bad district: %v", err)
	}
}
