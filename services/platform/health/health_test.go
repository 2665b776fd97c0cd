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
	c.Routes(mux)
	c.Add("redis", func(context.Context) error { return nil })
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	if w := get("/readyz"); w.Code != 200 {
		t.Fatalf("ready = %d", w.Code)
	}
	c.Add("kafka", func(context.Context) error { return errors.New("no brokers") })
	w := get("/readyz")
	if w.Code != 503 || !strings.Contains(w.Body.String(), "no brokers") {
		t.Errorf("ready = %d %s", w.Code, w.Body)
	}
	if w := get("/healthz"); w.Code != 200 {
		t.Errorf("healthz = %d", w.Code)
	}
}
