// Package httperr writes the JSON error bodies of cityhub's HTTP APIs:
//
//	{"error": {"code": "invalid_event", "message": "…", "details": […]}}
//
// code is machine-readable and stable; message is for people.
package httperr

import (
	"encoding/json"
	"net/http"
)

// Body is the JSON shape of an error response.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the content of an error response.
type Detail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
}

// Write sends status with an error body.
func Write(w http.ResponseWriter, status int, code, message string, details any) {
	WriteJSON(w, status, Body{Detail{Code: code, Message: message, Details: details}})
}

// WriteJSON sends status with v as the JSON body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}
