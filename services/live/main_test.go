package live

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(idleClientsEnv) != "" {
		os.Exit(runIdleClients()) // a child of BenchmarkIdleConnection
	}
	goleak.VerifyTestMain(m)
}
