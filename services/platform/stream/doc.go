// Package stream is cityhub's Kafka wiring, built on kafka-go.
//
// Writers wait for every in-sync replica and batch by milliseconds. A
// Consumer fetches, applies, then commits — never kafka-go's auto-committing
// ReadMessage — so delivery is at-least-once and every Apply must be
// idempotent; commits are batched on an interval. A message that cannot be
// decoded, or that Apply rejects for good, is written to the dead-letter
// topic with headers naming where it came from and why, and its offset is
// committed only after the dead-letter write is acknowledged. A Follower
// reads every partition of a topic from its end without a consumer group,
// for services where every replica needs every message.
package stream
