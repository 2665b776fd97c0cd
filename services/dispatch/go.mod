module github.com/cityhub/cityhub/services/dispatch

go 1.26.0

replace (
	github.com/cityhub/cityhub/proto => ../../proto
	github.com/cityhub/cityhub/services/platform => ../platform
)
