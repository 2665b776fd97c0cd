module github.com/cityhub/cityhub/frontend-stub

go 1.26.0

replace github.com/cityhub/cityhub/proto => ../proto

require github.com/cityhub/cityhub/proto v0.0.0-00010101000000-000000000000

require google.golang.org/protobuf v1.36.12 // indirect
