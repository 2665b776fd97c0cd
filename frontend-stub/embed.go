// Package frontendstub holds the wall screen and the dispatcher console:
// static pages with no build step, embedded so that the hub serves them with
// nothing beside the binary.
package frontendstub

import "embed"

// FS holds the pages. The tests (test/, *_test.go) and package.json, which
// only tells node's test runner that the scripts are modules, stay out.
//
//go:embed *.html *.css *.js console/*.js i18n/*.js
var FS embed.FS
