package config

import (
	"flag"
	"strings"
	"testing"
)

func TestCommonFromEnvAndFlags(t *testing.T) {
	t.Setenv("CITYHUB_KAFKA_BROKERS", "k1:9092, k2:9092,")
	t.Setenv("CITYHUB_REDIS_URL", "redis://r:6379/1")
	var c Common
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.Register(fs)
	if err := fs.Parse([]string{"--http", ":9999"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := strings.Join(c.KafkaBrokers, ","); got != "k1:9092,k2:9092" {
		t.Errorf("brokers = %q", got)
	}
	if c.RedisURL != "redis://r:6379/1" || c.HTTPAddr != ":9999" {
		t.Errorf("redis %q http %q", c.RedisURL, c.HTTPAddr)
	}
}

func TestCommonValidateNamesEveryProblem(t *testing.T) {
	c := Common{KafkaBrokers: []string{"nohost"}, Catalog: "x"}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	for _, want := range []string{`"nohost"`, "Redis URL", "HTTP listen address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
