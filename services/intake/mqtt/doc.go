// Package mqtt bridges IoT telemetry from an MQTT broker into the event
// log: a Bridge subscribes with QoS 1, maps each message's topic and
// payload to events through a device Registry (rules/adapters/devices.yaml),
// writes them through intake's Submit — the one path into the log — and
// acknowledges the message to the broker only after Kafka acknowledged its
// events.
//
// # Who published
//
// A subscriber never sees a publisher's username, so a topic must say who
// published, and something must vouch for it:
//
//   - v1/devices/{device}/telemetry: one device's readings. On an external
//     broker (Mosquitto, EMQX) its ACL must let only that device publish
//     there (Mosquitto: `pattern write v1/devices/%u/telemetry` with the
//     device id as username).
//   - v1/gateway/{gateway}/telemetry: a gateway's readings for the devices
//     the registry lets it speak for, as ThingsBoard's gateway API sends
//     them: {"Device A": [{"ts": 1483228800000, "values": {...}}]}.
//   - v1/devices/me/telemetry and v1/gateway/telemetry (ThingsBoard's own
//     topics, with the device's or gateway's token as MQTT username) are
//     taken by the embedded broker (package broker) only: it knows the
//     token of each connection and passes the message on under the topic
//     of that device or gateway. Arriving from any other broker they are
//     dead-lettered, since nothing says whose they are.
//
// # Payloads and event ids
//
// A device sends a reading, {"ts": 1483228800000, "values": {"depth": 31}},
// the values alone, {"depth": 31}, or an array of readings. Each reading
// becomes one event of the device's type at the device's location, its
// attributes the telemetry keys the registry maps (scaled where it says);
// a reading with none of them (a heartbeat) raises none. The event's id
// is "{device}:{ts}", so a message the broker delivers twice — after a
// crash, or because its acknowledgement was lost — is one event: intake's
// consumers are idempotent by id, and the bridge itself skips ids it
// wrote lately. A reading without ts is stamped with the bridge's receive
// time; its id also carries that time and a hash of the payload, and a
// redelivery, received later, is a second event: devices that need
// exactly one event per reading send ts.
//
// # Acknowledgement
//
// Messages are batched (up to events.MaxBatch events, or Linger after the
// first) into one Submit; each is acknowledged, in the order received as
// MQTT requires, only once its batch is in Kafka. While Kafka is
// unavailable the bridge retries with backoff and acknowledges nothing.
// What cannot be mapped — an unknown device, a payload that is not JSON,
// a value of the wrong type, a reading intake refuses — goes to the
// events' dead-letter topic with the MQTT topic and the reason, and is
// then acknowledged, so the broker does not deliver it for ever; the
// readings of the same message that could be mapped are written. The
// bridge's session is persistent (clean start off, a session expiry), so
// what it did not acknowledge before it stopped or crashed is delivered
// again when it reconnects. The broker must keep enough of it: Mosquitto's
// max_queued_messages (1000 by default) bounds what it queues for a
// session beyond the messages in flight, and it drops the rest.
package mqtt
