package stream

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetry(t *testing.T) {
	ctx := context.Background()
	calls, heard := 0, 0
	err := Retry(ctx, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("down")
		}
		return nil
	}, func(attempt int, err error) { heard = attempt })
	if err != nil || calls != 3 || heard != 2 {
		t.Errorf("Retry = %v after %d calls, %d failures heard; want success on the third", err, calls, heard)
	}

	calls = 0
	bad := Permanent(errors.New("never"))
	if err := Retry(ctx, func(context.Context) error { calls++; return bad }, nil); !errors.Is(err, bad) || calls != 1 {
		t.Errorf("a permanent error: %v after %d calls, want it at once", err, calls)
	}

	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if err := Retry(short, func(context.Context) error { return errors.New("down") }, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Retry past its context = %v, want the deadline", err)
	}
}
