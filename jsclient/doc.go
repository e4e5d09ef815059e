// Package jsclient holds the browser-side files the server serves: the
// demo page now, the ezcomet.js and cometify.js clients next. They are
// embedded in the binary so a deployment is one file.
package jsclient
