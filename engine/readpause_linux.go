//go:build linux && !poll_opt

package engine

import (
	"reflect"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

// Pausing reads under gnet v2.10 (C-08). gnet has no API to stop reading
// one connection: it keeps EPOLLIN set (level-triggered) and reads
// whatever arrives. The engine switches a connection's epoll interest
// itself, on the loop's epoll descriptor, which gnet does not export: it
// is read once per loop from gnet's unexported fields conn.loop.poller.fd
// (TestReadPauseGnetLayout fails if that layout changes; the check in
// pollerFD turns pausing off rather than guess).
//
// What gnet does meanwhile: its write path turns EPOLLIN back on
// (ModRead after a flush, ModReadWrite after a partial write), so a
// paused connection can be read once more; loop.syncReads pauses it
// again at that OnTraffic, which bounds what is read meanwhile to one
// read buffer (64 KiB). EPOLLHUP and EPOLLERR are reported whatever the
// interest, and a paused connection keeps EPOLLRDHUP: gnet closes a
// connection whose peer went away even while it is paused, as it would
// when reading its EOF. A FIN queued behind bytes that fill the window
// cannot arrive while paused: such a peer is seen going once reads
// resume (the request's answer, or its hold deadline); a reset always
// arrives.
//
// This file is built for gnet's default epoll poller only: with the
// poll_opt tag the event data is a pointer to gnet's attachment, which
// the engine cannot write; readpause_other.go then pauses nothing.

// pauseSupported: reads can be paused on this platform.
const pauseSupported = true

// pollerFD returns the epoll descriptor of gc's loop, checked by a
// harmless EPOLL_CTL_MOD of gc's own descriptor to the interest gnet
// registered it with (EPOLLIN|EPOLLPRI, level-triggered); ok is false
// when gnet's layout is not the one this was written for.
func pollerFD(gc gnet.Conn) (int, bool) {
	v := reflect.ValueOf(gc)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().String() != "*gnet.conn" {
		return -1, false
	}
	loop := v.Elem().FieldByName("loop")
	if !loop.IsValid() || loop.Kind() != reflect.Pointer || loop.IsNil() || loop.Type().String() != "*gnet.eventloop" {
		return -1, false
	}
	poller := loop.Elem().FieldByName("poller")
	if !poller.IsValid() || poller.Kind() != reflect.Pointer || poller.IsNil() || poller.Type().String() != "*netpoll.Poller" {
		return -1, false
	}
	fd := poller.Elem().FieldByName("fd")
	if !fd.IsValid() || fd.Kind() != reflect.Int {
		return -1, false
	}
	epfd := int(fd.Int())
	if epollMod(epfd, gc.Fd(), readEvents) != nil {
		return -1, false
	}
	return epfd, true
}

// The interests gnet v2.10 uses in level-triggered mode (netpoll's
// ReadEvents and WriteEvents), and EPOLLRDHUP.
const (
	readEvents  = syscall.EPOLLIN | syscall.EPOLLPRI
	writeEvents = syscall.EPOLLOUT
	hupEvents   = syscall.EPOLLRDHUP
)

func epollMod(epfd, fd int, events uint32) error {
	// gnet's default poller keeps the descriptor in the event data.
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	return syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, fd, &ev)
}

// pauseReads stops reading gc: only its output (when some is pending)
// and the peer's hang-up are watched.
func pauseReads(epfd int, gc gnet.Conn) error {
	var ev uint32 = hupEvents
	if gc.OutboundBuffered() > 0 {
		ev |= writeEvents
	}
	return epollMod(epfd, gc.Fd(), ev)
}

// resumeReads restores the interest gnet itself would have set.
func resumeReads(epfd int, gc gnet.Conn) error {
	var ev uint32 = readEvents
	if gc.OutboundBuffered() > 0 {
		ev |= writeEvents
	}
	return epollMod(epfd, gc.Fd(), ev)
}
