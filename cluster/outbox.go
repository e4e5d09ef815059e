package cluster

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
)

// The outbox: everything a Link sends that a caller must not wait for
// (deliveries, answers from the store node, forwarded writes) goes
// through one bounded queue to one publisher goroutine. A NATS publish
// can block: the client writes to the socket itself once its buffer
// fills, and the socket can be full. Persist's completions and the event
// loops must never wait for that.

// outMsg is one message for the publisher; flushed, when set, marks a
// Flush and carries nothing.
type outMsg struct {
	subj, reply string
	data        []byte
	flushed     chan struct{}
}

// send queues a message without blocking; false when the outbox is full
// (the message is dropped and counted).
func (l *Link) send(subj, reply string, data []byte) bool {
	select {
	case l.out <- outMsg{subj: subj, reply: reply, data: data}:
		return true
	default:
		l.stats.outDropped.Add(1)
		return false
	}
}

// publisher is the one goroutine that writes to NATS for send.
func (l *Link) publisher() {
	defer l.wg.Done()
	for {
		select {
		case m := <-l.out:
			l.publish(m)
		case <-l.done:
			return
		}
	}
}

func (l *Link) publish(m outMsg) {
	if m.flushed != nil {
		close(m.flushed)
		return
	}
	var err error
	if m.reply == "" {
		err = l.nc.Publish(m.subj, m.data)
	} else {
		err = l.nc.PublishRequest(m.subj, m.reply, m.data)
	}
	if err != nil {
		l.stats.outDropped.Add(1)
	}
	// A delivery dropped by a full outbox is invisible to receivers until
	// the channel's next message, which may never come: once the outbox
	// has room again, every node is told to repair everything it follows.
	if len(l.out) < cap(l.out)/2 && l.resyncDue.CompareAndSwap(true, false) {
		if err := l.nc.Publish(l.resyncSubject(), nil); err != nil {
			l.resyncDue.Store(true)
		}
	}
}

// resyncSubject carries the store node's "repair everything" notice.
func (l *Link) resyncSubject() string { return l.opts.Prefix + ".resync" }

// subscribeResync makes a resync notice repair every followed channel,
// as a reconnect does.
func (l *Link) subscribeResync() error {
	_, err := l.nc.Subscribe(l.resyncSubject(), func(*nats.Msg) { l.repairAll() })
	if err != nil {
		return fmt.Errorf("cluster: subscribe to resync notices: %w", err)
	}
	return nil
}

// Flush waits until everything queued before it was handed to NATS and
// the NATS server has processed it (subscriptions included), or ctx ends
// (RequestTimeout when ctx has no deadline).
func (l *Link) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.opts.RequestTimeout)
		defer cancel()
	}
	m := outMsg{flushed: make(chan struct{})}
	select {
	case l.out <- m:
	case <-ctx.Done():
		return fmt.Errorf("cluster: flush: %w", ctx.Err())
	}
	select {
	case <-m.flushed:
	case <-ctx.Done():
		return fmt.Errorf("cluster: flush: %w", ctx.Err())
	}
	if err := l.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("cluster: flush: %w", err)
	}
	return nil
}
