// Package platform is what every cityhub service shares. Its subpackages
// provide configuration, logging, health checks, HTTP serving, JWT
// authentication, the event catalog, Kafka and Redis wiring, and test
// harnesses that start real servers.
package platform
