// Package config reads the settings every cityhub service shares from flags,
// with environment variables as the flags' defaults, and validates them.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Env returns the value of the environment variable key, or def when it is
// unset or empty.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// List splits a comma-separated list, dropping empty items and spaces.
func List(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// listValue is a flag.Value for comma-separated lists.
type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listValue) Set(s string) error { *l.p = List(s); return nil }

// ListVar defines a comma-separated list flag whose default comes from the
// environment variable env.
func ListVar(fs *flag.FlagSet, p *[]string, name, env, def, usage string) {
	*p = List(Env(env, def))
	fs.Var(listValue{p}, name, usage+" (env "+env+")")
}

// StringVar defines a string flag whose default comes from the environment
// variable env.
func StringVar(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	fs.StringVar(p, name, Env(env, def), usage+" (env "+env+")")
}

// DurationVar defines a duration flag whose default comes from the
// environment variable env. A malformed variable is reported by Validate of
// the config that owns it, via errs.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string, errs *[]error) {
	d := def
	if v := os.Getenv(env); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			*errs = append(*errs, fmt.Errorf("%s=%q: %w", env, v, err))
			d = def
		}
	}
	fs.DurationVar(p, name, d, usage+" (env "+env+")")
}

// Common holds the settings every service needs.
type Common struct {
	// KafkaBrokers are the bootstrap brokers, host:port.
	KafkaBrokers []string
	// TopicPrefix is prepended to every topic name; empty in production.
	TopicPrefix string
	// RedisURL is redis://, rediss:// or unix:// (see redisclient.New).
	RedisURL string
	// HTTPAddr is the listen address of the service's HTTP server.
	HTTPAddr string
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
	// JWTPublicKey is a PEM file with the Ed25519 key that verifies tokens.
	JWTPublicKey string
	// Catalog is the path of rules/catalog.yaml.
	Catalog string
}

// Register defines the flags of c on fs.
func (c *Common) Register(fs *flag.FlagSet) {
	ListVar(fs, &c.KafkaBrokers, "kafka-brokers", "CITYHUB_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	StringVar(fs, &c.TopicPrefix, "topic-prefix", "CITYHUB_TOPIC_PREFIX", "", "prefix for every Kafka topic name")
	StringVar(fs, &c.RedisURL, "redis-url", "CITYHUB_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	StringVar(fs, &c.HTTPAddr, "http", "CITYHUB_HTTP", ":8080", "HTTP listen address")
	StringVar(fs, &c.LogLevel, "log-level", "CITYHUB_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	StringVar(fs, &c.LogFormat, "log-format", "CITYHUB_LOG_FORMAT", "text", "log format: text or json")
	StringVar(fs, &c.JWTPublicKey, "jwt-public-key", "CITYHUB_JWT_PUBLIC_KEY", "", "PEM file with the Ed25519 public key that verifies tokens")
	StringVar(fs, &c.Catalog, "catalog", "CITYHUB_CATALOG", "rules/catalog.yaml", "event catalog")
}

// Validate reports every problem with c at once.
func (c *Common) Validate() error {
	var errs []error
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers: set --kafka-brokers or CITYHUB_KAFKA_BROKERS"))
	}
	for _, b := range c.KafkaBrokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("Kafka broker %q: want host:port", b))
		}
	}
	if c.RedisURL == "" {
		errs = append(errs, errors.New("no Redis URL: set --redis-url or CITYHUB_REDIS_URL"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("no HTTP listen address"))
	}
	if c.Catalog == "" {
		errs = append(errs, errors.New("no catalog path"))
	}
	return errors.Join(errs...)
}
