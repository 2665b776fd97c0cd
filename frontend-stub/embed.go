// Package frontendstub holds the wall screen and the dispatcher console:
// static pages with no build step, embedded so that the hub serves them with
// nothing beside the binary.
package frontendstub

import "embed"

// FS holds the pages.
//
//go:embed *.html *.css *.js
var FS embed.FS
