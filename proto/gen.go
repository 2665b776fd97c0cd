// Package proto holds cityhub's protobuf schemas; the generated Go code is in
// cityhub/v1. Regenerate with "go generate" in this directory after editing a
// .proto file; the test suite fails while the committed code is stale.
package proto

//go:generate env GOWORK=off go tool -modfile=tools/go.mod buf generate
