// Package promtext writes the Prometheus text exposition format (version
// 0.0.4) by appending to a byte slice: HELP and TYPE lines, plain
// samples, one-label samples and fixed-bucket histograms. It owns nothing
// else: which series Halley exposes is decided by their owners (protocol's
// stats.go, admin's series.go).
//
// The appenders never allocate for valid UTF-8 input, so that the public
// /metrics, answered on an event loop, costs no garbage; the caller owns
// dst before and after each call. Nothing here checks names: the tests of
// the packages that serve /metrics parse the whole answer with
// Prometheus's own parser and check names, HELP and TYPE there.
package promtext
