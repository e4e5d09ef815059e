package engine

import "time"

// wheelSlots is the number of slots of a timerWheel. With the default
// 250 ms sweep one turn is 256 s, longer than every default deadline, so
// most entries are looked at once, when they are due.
const wheelSlots = 1024

// timerWheel is a hashed timer wheel of connections, one per loop. Each
// connection has at most one deadline (what it means follows from the
// connection's state), kept in an intrusive list: scheduling, moving and
// removing cost O(1) and no allocation. Only the loop goroutine uses it.
type timerWheel struct {
	tick  int64 // nanoseconds per slot
	last  int64 // last slot number swept
	slots [wheelSlots]*conn
}

func (w *timerWheel) init(tick time.Duration) {
	w.tick = int64(tick)
	if w.tick <= 0 {
		w.tick = int64(250 * time.Millisecond)
	}
}

// schedule sets c's deadline (nanoseconds on the loop clock), replacing
// any earlier one.
func (w *timerWheel) schedule(c *conn, deadline int64) {
	w.remove(c)
	slot := (deadline + w.tick - 1) / w.tick
	if slot <= w.last {
		slot = w.last + 1
	}
	i := int32(slot % wheelSlots)
	c.deadline = deadline
	c.slot = i + 1
	c.tnext = w.slots[i]
	c.tprev = nil
	if c.tnext != nil {
		c.tnext.tprev = c
	}
	w.slots[i] = c
}

// remove clears c's deadline, if any.
func (w *timerWheel) remove(c *conn) {
	if c.slot == 0 {
		return
	}
	i := c.slot - 1
	if c.tprev != nil {
		c.tprev.tnext = c.tnext
	} else {
		w.slots[i] = c.tnext
	}
	if c.tnext != nil {
		c.tnext.tprev = c.tprev
	}
	c.tnext, c.tprev, c.slot = nil, nil, 0
}

// advance removes every connection whose deadline is at or before now
// and appends it to dst.
func (w *timerWheel) advance(now int64, dst []*conn) []*conn {
	cur := now / w.tick
	from := w.last + 1
	if cur-from >= wheelSlots {
		from = cur - wheelSlots + 1
	}
	for slot := from; slot <= cur; slot++ {
		for c := w.slots[slot%wheelSlots]; c != nil; {
			next := c.tnext
			if c.deadline <= now {
				w.remove(c)
				dst = append(dst, c)
			}
			c = next
		}
	}
	if cur > w.last {
		w.last = cur
	}
	return dst
}
