package ruler_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The ruler runs a consumer, a sweeper and a pack watcher: each must be
// gone once Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
