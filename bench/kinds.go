package bench

import (
	"fmt"
	"strings"
)

// serverKind is one server API the harness speaks (--kind): how the suite
// starts that server for a run, how a channel is named, the publish
// request and what answer counts as accepted, the subscribe request of
// each transport, and how a delivered frame or poll answer is read. All
// of the harness goes through it; nothing else looks at the kind's name.
type serverKind interface {
	// name is the --kind value.
	name() string
	// column is the server's column in the suite's tables and JSON
	// lines: "halley" for both of Halley's APIs, else the peer's name.
	column() string

	// start starts the server for one run of the suite (extra: more
	// server flags, Halley's only) and returns it once it answers.
	start(c *runConfig, extra []string) (*instance, error)

	// publisherOf is what the API publishes with, of the credentials a
	// fresh Halley prints.
	publisherOf(c credentials, user string) publisher
	// flags are the harness flags that select the API, for a publishing
	// command (publish) or a subscribing one.
	flags(publish bool) string
	// checkPublisher refuses credentials the API cannot publish with.
	checkPublisher(p publisher) error
	// channel is channel n of prefix as the API spells it (a Halley
	// qname "<user>-<prefix><n>", else the \w characters of prefix and n).
	channel(user, prefix string, n int) string
	// publish is the complete HTTP/1.1 request publishing payload to ch.
	publish(p publisher, host, ch string, payload []byte) []byte
	// published says whether an answer to publish is a success.
	published(r *response) bool

	// supports says whether subscribers can use transport ("ws",
	// "longpoll").
	supports(transport string) bool
	// checkClient refuses a subscriber configuration the API cannot
	// serve (credentials, the shape of --qname, the transport).
	checkClient(c *clientConfig) error
	// qname is the client processes' --qname for channels of prefix:
	// the channel of connection g is qname + g mod channels.
	qname(user, prefix string) string
	// subPath is connection g's subscribe request path; resume is where
	// a long-poll goes on from (empty for the first request).
	subPath(c *clientConfig, g int, resume string) string
	// hello is the text frame a WebSocket subscriber sends right after
	// the handshake, and waits for the answer to (nil: none).
	hello() []byte
	// next reads the first message of a WebSocket data frame: its
	// payload, its push id (-1: the API has none) and the rest of the
	// frame (nil when the frame held one message). ignore is a message
	// that is no delivery (a resume point, a gap signal, a reply); a nil
	// payload that is not ignored is a bad message. It allocates nothing
	// for the compact frames a server sends.
	next(frame []byte) (payload []byte, id int64, ignore bool, rest []byte)
	// pollAnswer reads a 200 long-poll answer: where the next poll goes
	// on from (empty: unchanged) and whether it carried messages.
	pollAnswer(body []byte) (resume string, msgs bool)
}

// publisher is what a publish request needs: the account's key, user and
// secret (Halley's APIs; the peers take none).
type publisher struct {
	Key, User, Secret string
}

// instance is one started server.
type instance struct {
	pid   int    // for RSS and CPU: it and every process under it
	url   string // base URL, http://host:port
	procs int    // processes in its tree once started (a cluster: its nodes and more; 0: not counted)
	out   func() string
	stop  func()
}

// resumer is a kind whose subscribers resume by push id after a reset
// (bench storm) and whose streams start with a resume point.
type resumer interface {
	resumePoint(frame []byte) (int64, bool)
}

// kindList is every kind, in the order the suite's columns take.
var kindList = []serverKind{ezKind{}, cfKind{}, nchanKind{}, centrifugeKind{}}

// kindHelp is the --kind flag's help.
const kindHelp = "server API: halley (EZComet), cometify (Halley's Cometify API), nchan (the Nchan peer), centrifuge (the Centrifuge peer)"

// kindNames lists the --kind values.
func kindNames() string {
	var n []string
	for _, k := range kindList {
		n = append(n, k.name())
	}
	return strings.Join(n, ", ")
}

// kindOf returns the kind named name.
func kindOf(name string) (serverKind, error) {
	for _, k := range kindList {
		if k.name() == name {
			return k, nil
		}
	}
	return nil, fmt.Errorf("--kind must be one of %s, not %q", kindNames(), name)
}

// mustKind is kindOf for names the harness itself wrote.
func mustKind(name string) serverKind {
	k, err := kindOf(name)
	if err != nil {
		panic(err)
	}
	return k
}

// peerKind is a peer: a server the suite starts and stops with the
// scripts of its directory under ../shared/peers.
type peerKind interface {
	serverKind
	peer(c *runConfig) peerScripts
}

// isPeer says whether k is a peer's API rather than one of Halley's.
func isPeer(k serverKind) bool {
	_, ok := k.(peerKind)
	return ok
}

// postRequest is a complete HTTP/1.1 POST.
func postRequest(path, host, ctype, body string) []byte {
	return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		path, host, ctype, len(body), body)
}
