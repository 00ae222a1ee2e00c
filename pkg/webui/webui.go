// Package webui holds the browser assets the API serves, embedded in its
// binary: the web console (console/, plain HTML, CSS and JavaScript of
// ours) and the interactive API docs (docs/: a page of ours around
// RapiDoc 9.3.8, vendored from npm as rapidoc-min.js.gz under its MIT
// licence, RAPIDOC-LICENSE.txt).
package webui

import (
	"embed"
	"io/fs"
)

//go:embed console docs
var assets embed.FS

// Console is the web console's files; index.html is its page.
func Console() fs.FS { return sub("console") }

// Docs is the API docs' files; index.html is its page.
func Docs() fs.FS { return sub("docs") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(assets, dir)
	if err != nil {
		panic(err) // the directories are embedded above
	}
	return f
}
