// Command mqttbridge runs cityhub's MQTT bridge as its own process: it
// subscribes to an MQTT broker and writes the telemetry of the devices in
// the device registry to the event log, acknowledging each message only
// once Kafka has its events.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/cityhub/cityhub/services/intake"
	"github.com/cityhub/cityhub/services/intake/mqtt"
	"github.com/cityhub/cityhub/services/platform/config"
	"github.com/cityhub/cityhub/services/platform/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mqttbridge:", err)
		os.Exit(1)
	}
}

// flags are the bridge's own settings; the password comes from the
// environment or a file, never from the command line.
type flags struct {
	broker, username, passwordFile, clientID, devices string
	tls                                               bool
}

func (f *flags) register(fs *flag.FlagSet) {
	config.StringVar(fs, &f.broker, "mqtt-broker", "CITYHUB_MQTT_BROKER", mqtt.DefaultBroker, "MQTT broker, host:port")
	config.StringVar(fs, &f.username, "mqtt-username", "CITYHUB_MQTT_USERNAME", "", "the bridge's MQTT username")
	config.StringVar(fs, &f.passwordFile, "mqtt-password-file", "CITYHUB_MQTT_PASSWORD_FILE", "", "file with the bridge's MQTT password (or set CITYHUB_MQTT_PASSWORD)")
	config.StringVar(fs, &f.clientID, "mqtt-client-id", "CITYHUB_MQTT_CLIENT_ID", mqtt.DefaultClientID, "MQTT client id: the broker keeps the bridge's session under it")
	config.StringVar(fs, &f.devices, "devices", "CITYHUB_DEVICES", "rules/adapters/devices.yaml", "device registry")
	useTLS, _ := strconv.ParseBool(config.Env("CITYHUB_MQTT_TLS", "false"))
	fs.BoolVar(&f.tls, "mqtt-tls", useTLS, "connect to the broker over TLS, verified against the system's roots (env CITYHUB_MQTT_TLS)")
}

func (f *flags) password() (string, error) {
	if f.passwordFile == "" {
		return os.Getenv("CITYHUB_MQTT_PASSWORD"), nil
	}
	b, err := os.ReadFile(f.passwordFile)
	if err != nil {
		return "", fmt.Errorf("MQTT password: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func run(ctx context.Context) error {
	var f flags
	fs := flag.NewFlagSet("mqttbridge", flag.ExitOnError)
	f.register(fs)
	b, err := daemon.Setup("mqttbridge", fs, os.Args[1:])
	if err != nil {
		return err
	}
	defer b.Close()
	if f.devices == "" {
		return errors.New("no device registry: set --devices or CITYHUB_DEVICES")
	}
	reg, err := mqtt.LoadRegistry(f.devices, b.Catalog)
	if err != nil {
		return err
	}
	password, err := f.password()
	if err != nil {
		return err
	}
	w, err := b.Writer()
	if err != nil {
		return err
	}
	svc, err := intake.New(intake.Options{
		Writer: w, Topics: b.Topics, Catalog: b.Catalog, Verifier: b.Verifier,
		Logger: b.Logger, Registerer: b.Registry,
	})
	if err != nil {
		return err
	}
	opts := mqtt.Options{
		Broker: f.broker, Username: f.username, Password: password, ClientID: f.clientID,
		Registry: reg, Submitter: svc, DeadLetters: mqtt.KafkaDeadLetters(w, b.Topics.EventsDLQ),
		Logger: b.Logger, Registerer: b.Registry,
	}
	if f.tls {
		opts.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	bridge, err := mqtt.New(opts)
	if err != nil {
		return err
	}
	b.Health.Add("mqtt", bridge.Check)
	watch := func(ctx context.Context) error {
		return mqtt.WatchRegistry(ctx, f.devices, b.Catalog, 0, b.Logger, bridge.SetRegistry)
	}
	return b.Run(ctx, http.NewServeMux(), bridge.Run, watch)
}
