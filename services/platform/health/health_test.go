package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadyReportsFailingCheck(t *testing.T) {
	c := New()
	mux := http.NewServeMux()
	// The test trusts requests that say so; services ask the token verifier.
	c.Routes(mux, func(r *http.Request) bool { return r.Header.Get("X-Trusted") == "yes" })
	c.Add("redis", func(context.Context) error { return nil })
	get := func(path string, trusted bool) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", path, nil)
		if trusted {
			r.Header.Set("X-Trusted", "yes")
		}
		mux.ServeHTTP(w, r)
		return w
	}
	if w := get("/readyz", false); w.Code != 200 {
		t.Fatalf("ready = %d", w.Code)
	}
	c.Add("kafka", func(context.Context) error { return errors.New("dial tcp 10.1.2.3:9092: no brokers") })
	w := get("/readyz", true)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "no brokers") || !strings.Contains(w.Body.String(), `"kafka"`) {
		t.Errorf("ready for a trusted caller = %d %s", w.Code, w.Body)
	}
	w = get("/readyz", false)
	if w.Code != 503 || strings.Contains(w.Body.String(), "kafka") || strings.Contains(w.Body.String(), "10.1.2.3") {
		t.Errorf("ready for anyone = %d %s, want 503 with the status only", w.Code, w.Body)
	}
	if w := get("/healthz", false); w.Code != 200 {
		t.Errorf("healthz = %d", w.Code)
	}
}

func TestReadyWithoutDetailsTellsNoOne(t *testing.T) {
	c := New()
	mux := http.NewServeMux()
	c.Routes(mux, nil)
	c.Add("redis", func(context.Context) error { return errors.New("dial tcp 10.0.0.7:6379: refused") })
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 503 || strings.Contains(w.Body.String(), "10.0.0.7") {
		t.Errorf("ready = %d %s", w.Code, w.Body)
	}
}
