// Package control owns the local control socket: a Unix socket in the
// data directory (SocketName) through which CLI commands (`halley
// account`, `halley backup`) reach a running server, and the fallback
// that runs the same command against a stopped data directory by opening
// the store itself (Do).
//
// Why a socket: a running server holds Pebble's exclusive lock on the
// data directory, so a CLI cannot open the store beside it. The
// command takes effect in the server the moment the CLI returns, and
// there is never a second writer to Pebble.
//
// Protocol: the client sends one JSON Request line, the server answers
// one JSON Reply line and closes the connection. One connection carries
// one command.
//
// Who may talk to it (C-14): the socket lives in the data directory
// (0700), is itself 0600, and on Linux the server also checks the peer's
// uid with SO_PEERCRED (root or the server's own uid): the socket changes
// accounts and writes backups, and a file mode alone can be loosened by a
// umask or a copied tree.
//
// It knows persist (the commands' effects) and nothing about HTTP or the
// event loops.
package control
