package redisclient_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cityhub/cityhub/services/platform/redisclient"
	"github.com/cityhub/cityhub/services/platform/redistest"
)

func TestClusterOptions(t *testing.T) {
	const secret = "p@ss:w,rd/ä"
	enc := url.PathEscape(secret)
	good := []struct {
		url, user, password string
		tls                 bool
		addrs               int
	}{
		{"redis-cluster://10.0.0.1:6379,10.0.0.2:6379", "", "", false, 2},
		{"redis-cluster://:" + enc + "@redis-0.city.example:6379", "", secret, false, 1},
		{"rediss-cluster://cityhub:" + enc + "@redis-0.city.example:6379,redis-1.city.example:6379,[::1]:7000", "cityhub", secret, true, 3},
	}
	for _, c := range good {
		o, err := redisclient.ClusterOptions(c.url)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if o.Username != c.user || o.Password != c.password || (o.TLSConfig != nil) != c.tls || len(o.Addrs) != c.addrs {
			t.Errorf("%s: user %q password %q TLS %v addrs %v", c.url, o.Username, o.Password, o.TLSConfig != nil, o.Addrs)
		}
		if o.TLSConfig != nil && o.TLSConfig.ServerName != "" {
			t.Errorf("%s: TLS names one server, %q, for every node", c.url, o.TLSConfig.ServerName)
		}
	}
	bad := map[string]string{
		"redis-cluster://":                                "want host:port",
		"redis-cluster://10.0.0.1":                        "want host:port",
		"redis-cluster://10.0.0.1:6379,":                  "want host:port",
		"redis-cluster://10.0.0.1:6379/0":                 "no path or options",
		"redis-cluster://10.0.0.1:6379?dial_timeout=1":    "no path or options",
		"redis-cluster://cityhub@10.0.0.1:6379":           "a user without a password",
		"redis-cluster://:" + secret + "%zz@10.0.0.1:1":   "password is not percent-encoded",
		"rediss-cluster://:" + enc + "@redis-0.example":   "want host:port",
		"redis-clusterx://:" + enc + "@redis-0.example:1": "scheme",
	}
	for u, want := range bad {
		_, err := redisclient.ClusterOptions(u)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", u, err, want)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), enc) {
			t.Errorf("%s: the error names the password: %v", u, err)
		}
	}
}

// TestClusterWithPassword: New reaches a Redis Cluster whose nodes require
// a password given in the URL, and a wrong one is refused.
func TestClusterWithPassword(t *testing.T) {
	const secret = "s3cr:et@cluster"
	srv := redistest.StartClusterWithPassword(t, 3, secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rdb, err := redisclient.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for _, k := range []string{"a", "b", "c", "d"} { // keys on every master
		if err := rdb.Set(ctx, "redisclient:"+k, k, time.Minute).Err(); err != nil {
			t.Fatalf("SET through %s: %v", strings.Replace(srv.URL, url.PathEscape(secret), "…", 1), err)
		}
	}
	wrong, err := redisclient.New(strings.Replace(srv.URL, url.PathEscape(secret), "wrong", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("a wrong password was let in")
	}
}
