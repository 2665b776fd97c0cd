package hub

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/intake/mqtt/broker"
	"github.com/cityhub/cityhub/services/platform/catalog"
)

// bridgeUser is the embedded broker's account for the hub's own bridge; its
// password is drawn anew on every start and never shown.
const bridgeUser = "cityhub-bridge"

// iot is the MQTT side of the hub: the bridge from a broker to intake,
// and, unless opts.MQTTBroker names one, the broker itself, in process.
type iot struct {
	path   string
	cat    *catalog.Catalog
	broker *broker.Broker // nil with an external broker
	bridge *mqtt.Bridge
	opts   Options
}

// newIoT starts the embedded broker (or finds the external one) and
// builds the bridge, when the rules have a device registry
// (adapters/devices.yaml); it returns nil otherwise.
func newIoT(opts Options, svcs *services, in *infra, cat *catalog.Catalog, info *Info) (*iot, error) {
	path := filepath.Join(opts.RulesDir, "adapters", "devices.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	reg, err := mqtt.LoadRegistry(path, cat)
	if err != nil {
		return nil, err
	}
	t := &iot{path: path, cat: cat, opts: opts}
	addr, user, password := opts.MQTTBroker, opts.MQTTUsername, opts.MQTTPassword
	if addr == "" {
		user, password = bridgeUser, rand.Text()
		t.broker, err = broker.Start(context.Background(), broker.Options{
			Addr: opts.MQTTAddr, Registry: reg, BridgeUsername: user, BridgePassword: password,
			Logger: opts.Logger, Registerer: svcs.reg,
		})
		if err != nil {
			return nil, err
		}
		addr = t.broker.Addr()
		info.MQTTAddr = addr
	}
	t.bridge, err = mqtt.New(mqtt.Options{
		Broker: addr, Username: user, Password: password, Registry: reg,
		Submitter: svcs.intake, DeadLetters: mqtt.KafkaDeadLetters(svcs.writer, in.topics.EventsDLQ),
		Logger: opts.Logger, Registerer: svcs.reg,
	})
	if err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// run bridges until ctx ends, and follows the registry file: a device
// added or dropped is let in or locked out of the broker and mapped.
func (t *iot) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return t.bridge.Run(ctx) })
	g.Go(func() error {
		return mqtt.WatchRegistry(ctx, t.path, t.cat, 0, t.opts.Logger, func(r *mqtt.Registry) {
			if t.broker != nil {
				if err := t.broker.SetRegistry(r); err != nil {
					t.opts.Logger.Error("the broker refused the new device registry; the old one stays", "err", err)
					return
				}
			}
			t.bridge.SetRegistry(r)
		})
	})
	return g.Wait()
}

// close stops the embedded broker.
func (t *iot) close() {
	if t.broker != nil {
		t.broker.Close()
	}
}
