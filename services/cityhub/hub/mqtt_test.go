package hub_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/cityhub/hub"
	"github.com/cityhub/cityhub/services/intake/mqtt/mqtttest"
	"github.com/cityhub/cityhub/services/platform/auth"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

// A water-level sensor's reading over MQTT becomes a case on the
// all-in-one hub: through the embedded broker, where the device signs in
// with its token and publishes ThingsBoard-style, and through a real
// mosquitto that the hub bridges instead, where the device publishes on
// its own topic.
func TestMQTTReadingsBecomeCases(t *testing.T) {
	for _, tc := range []struct {
		name     string
		external bool
		device   string // the registry's id of the device publishing
		district string
		values   string // a reading deep enough for the deep-waterlogging rule
	}{
		{"embedded broker", false, "wl-xh-tianping-01", "xuhui", `{"depth": 46}`},
		{"mosquitto", true, "wl-hp-zhongshan-01", "huangpu", `{"level_mm": 460}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redis := redistest.Start(t)
			o := hub.Options{DataDir: t.TempDir(), RedisURL: redis.URL}
			var client mqtttest.ClientOptions
			topic := "v1/devices/me/telemetry"
			if tc.external {
				m := mqtttest.StartMosquitto(t)
				o.MQTTBroker = m.Addr
				topic = "v1/devices/" + tc.device + "/telemetry"
			} else {
				client.Username = "TOKEN-" + strings.ToUpper(tc.device)
			}
			h := startHub(t, o)
			addr := h.info.MQTTAddr
			if tc.external {
				addr = o.MQTTBroker
				if h.info.MQTTAddr != "" {
					t.Errorf("an embedded broker runs beside the external one, at %s", h.info.MQTTAddr)
				}
			} else if addr == "" {
				t.Fatal("the hub runs no MQTT broker")
			}
			c := mqtttest.Connect(t, addr, client)
			commander := h.token(t, auth.Principal{Subject: "commander", Role: auth.RoleCommander})
			deadline := time.Now().Add(30 * time.Second)
			for {
				// A broker keeps nothing for a subscriber it has not seen
				// yet: the device reads again until the bridge has it.
				mqtttest.Publish(t, c, topic, fmt.Appendf(nil, `{"ts": %d, "values": %s}`, time.Now().UnixMilli(), tc.values))
				code, body := h.do(t, "GET", "/v1/cases?district="+tc.district, commander, nil)
				if code == http.StatusOK && strings.Contains(string(body), `"event_type":"waterlogging"`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no waterlogging case in %s from the reading: %d %.400s", tc.district, code, body)
				}
				time.Sleep(500 * time.Millisecond)
			}
			code, body := h.do(t, "GET", "/v1/sources", commander, nil)
			if code != http.StatusOK || !strings.Contains(string(body), `"mqtt"`) {
				t.Errorf("GET /v1/sources = %d %s, without the mqtt way in", code, body)
			}
		})
	}
}
