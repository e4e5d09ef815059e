// Package conformance is Halley's black-box conformance suite. It checks the
// rules of the wire specification (docs/spec.md; every case is named by a rule id
// such as EZ-W-07) against a running server, over real sockets only.
//
// The package imports nothing else from this module, on purpose: it must be
// runnable against any implementation of the EZComet and Cometify APIs, and
// it must not share a parser or a constant with the server it judges. Its
// HTTP, WebSocket and Server-Sent Events clients are written here on bare
// net.Conn so that it sees the bytes the server sends, not what a lenient
// client library makes of them.
//
// Entry points: Main (the `halley conform` subcommand) and Run. Each rule
// group lives in its own file (common.go, limits.go, clientip.go,
// accounts.go, ezwrite.go, ezread.go, cfpush.go, cflisten.go, cfcap.go,
// gap.go, stats.go, resume.go, drain.go) and contributes its cases to the
// ordered list in cases.go; the runner executes cases in parallel and
// prints them in spec order. Each case dials from a loopback address of its
// own (clientaddr.go), so that per-IP rules never couple cases.
package conformance
