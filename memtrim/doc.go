// Package memtrim returns the Go heap's free memory to the operating
// system once a burst of work is over.
//
// A server that mostly holds idle connections has a small live heap that
// grows in bursts (a page loaded everywhere opens thousands of
// connections at once). The collector lets the heap grow to twice what was
// live at its last cycle before it runs again, and the runtime keeps the
// pages it freed for reuse, up to that goal: after a burst, the process's
// resident memory stays at the burst's peak, up to twice what its
// connections need, until the heap happens to grow again. An operator
// sizing a machine by connections sees that headroom as memory per
// connection (issue 17 measured it: a node of a cluster, which takes some
// garbage per connection from its reads, kept about a third more per
// connection than a single node).
//
// A Trimmer looks every few seconds (Options.Every) and, when the heap
// holds much more than is live (free pages plus garbage not yet
// collected: at least Options.MinBytes and a sixteenth of the live heap)
// while little is being allocated (the burst is over), runs
// debug.FreeOSMemory once: one collection, and the free pages go back.
// While the server is busy allocating it does nothing, so a steady
// publisher never pays for collections it would not otherwise run.
package memtrim
