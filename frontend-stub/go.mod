module github.com/cityhub/cityhub/frontend-stub

go 1.26.0
