// Package jsclient holds the browser-side files the server serves: the
// EZComet and Cometify JavaScript clients (SPEC JS-01..JS-04) and the demo
// page. They are embedded in the binary so a deployment is one file.
//
// The clients are written in src/ and built into dist/ by esbuild (node
// build.mjs, pinned in package-lock.json). dist/ is committed because the
// embed directive reads it, and `make test` checks that a rebuild
// reproduces it byte for byte.
package jsclient
