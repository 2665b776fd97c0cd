package alertstate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cityhub/cityhub/services/platform/redistest"
)

// TestScriptsStayInTheAlertsSlot runs random sequences through a Store on
// a three-master Redis Cluster, and holds it to Memory there too. A node
// refuses a script that touches a key outside the slot of the keys it was
// given, as a single server never does, but only a script that declares
// itself with a shebang: Redis spares the old kind for compatibility. The
// scripts run here with "#!lua" added, which changes nothing else; the
// test swaps the package's scripts, so it must not run in parallel.
func TestScriptsStayInTheAlertsSlot(t *testing.T) {
	client := redistest.StartCluster(t, 3).Client.(*redis.ClusterClient)
	ctx := context.Background()
	// The node must refuse what the test is about, or it proves nothing.
	stray := redis.NewScript("#!lua\nredis.call('GET', KEYS[1])\nreturn redis.call('GET', '" + FiringKey + "')")
	if err := stray.Run(ctx, client, keys("fp")[:1]).Err(); err == nil || !strings.Contains(err.Error(), "same slot") {
		t.Fatalf("a script touching a key outside its slot: %v, want it refused", err)
	}
	apply, tally, all := applyScript, tallyScript, scripts
	applyScript, tallyScript, scripts = loadScripts("#!lua\n")
	t.Cleanup(func() { applyScript, tallyScript, scripts = apply, tally, all })
	restore := restoreScript
	restoreScript = redis.NewScript("#!lua\n" + restoreSrc)
	t.Cleanup(func() { restoreScript = restore })
	for seed := range uint64(20) {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 0xc105))
			data := make([]byte, 600)
			for i := range data {
				data[i] = byte(rnd.Uint32())
			}
			if err := redistest.Flush(ctx, client); err != nil {
				t.Fatal(err)
			}
			runSequence(t, client, data)
		})
		if !ok {
			return
		}
	}
}
