package dispatch

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the OpenAPI 3.0 document of the dispatch API, served at
// GET /v1/openapi.yaml. Tests keep it true: every route Routes registers is
// in it and nothing else, the action bodies follow lifecycle.Table, the
// schemas list exactly the fields of the Go types behind them, and real
// answers of the handlers validate against it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// serveOpenAPI serves OpenAPI. It wants a token like every other read: the
// document is no secret, but the rule is that every endpoint but health
// checks is authenticated, and a console that can call the API has one.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(OpenAPI)
}
