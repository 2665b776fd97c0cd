// Package replicas holds the test of cityhub's production shape: several
// replicas of the ruler, dispatch and the live gateway, each a separate
// service instance with its own Kafka and Redis clients, sharing one Kafka
// and one Redis (or Redis Cluster), while replicas stop and start under
// load. It has no code of its own: every service it runs is the one the
// service's own command runs.
package replicas
