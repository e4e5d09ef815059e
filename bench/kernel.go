package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// kernelSlabs are the slab caches a run of many idle sockets grows: the
// sockets themselves (TCP, sock_inode_cache), their files and directory
// entries (filp, dentry), epoll's registrations, bound ports and
// half-open connections. PERF.md P7: these, not RSS, decide how many
// connections one box holds.
var kernelSlabs = []string{"TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "eventpoll_pwq",
	"tcp_bind_bucket", "request_sock_TCP", "skbuff_head_cache", "inet_peer_cache"}

// slabLine is one cache of /proc/slabinfo.
type slabLine struct {
	Name    string `json:"name"`
	Active  int64  `json:"active_objs"`
	ObjSize int64  `json:"objsize"`
	Bytes   int64  `json:"bytes"` // active × objsize
}

// kernelMem is the machine's kernel memory for sockets at one moment: the
// whole machine, client and server sockets together.
type kernelMem struct {
	Sockstat    string     `json:"sockstat"`           // /proc/net/sockstat as read
	TCPInuse    int64      `json:"tcp_inuse"`          // sockets in use (both ends of each loopback connection)
	TCPAlloc    int64      `json:"tcp_alloc"`          // sockets allocated
	TCPMemPages int64      `json:"tcp_mem_pages"`      // TCP buffer pages (sockstat "mem")
	PageSize    int64      `json:"page_size"`          // bytes
	Slabs       []slabLine `json:"slabs,omitempty"`    // kernelSlabs found in /proc/slabinfo (empty when unreadable)
	SlabTotal   int64      `json:"slab_bytes"`         // sum of Slabs
	MemAvail    int64      `json:"mem_available"`      // /proc/meminfo MemAvailable, bytes
	SUnreclaim  int64      `json:"slab_unreclaimable"` // /proc/meminfo SUnreclaim, bytes
}

// parseSockstat reads the TCP line of /proc/net/sockstat.
func parseSockstat(b []byte) (inuse, alloc, mem int64, err error) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		found := false
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("sockstat TCP %s: %v", f[i], err)
			}
			switch f[i] {
			case "inuse":
				inuse = v
			case "alloc":
				alloc = v
			case "mem":
				mem, found = v, true
			}
		}
		if !found {
			break
		}
		return inuse, alloc, mem, nil
	}
	return 0, 0, 0, fmt.Errorf("no TCP mem in sockstat")
}

// parseSlabLines returns the named caches of /proc/slabinfo, in the order
// of names (missing ones left out).
func parseSlabLines(b []byte, names []string) []slabLine {
	found := map[string]slabLine{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		active, err1 := strconv.ParseInt(f[1], 10, 64)
		size, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		found[f[0]] = slabLine{Name: f[0], Active: active, ObjSize: size, Bytes: active * size}
	}
	var out []slabLine
	for _, n := range names {
		if s, ok := found[n]; ok {
			out = append(out, s)
		}
	}
	return out
}

// parseMeminfo returns the named field of /proc/meminfo in bytes.
func parseMeminfo(b []byte, field string) int64 {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		return v
	}
	return 0
}

// readKernelMem reads sockstat, slabinfo and meminfo under procDir; what
// cannot be read stays zero (slabinfo needs root).
func readKernelMem(procDir string) kernelMem {
	k := kernelMem{PageSize: int64(os.Getpagesize())}
	if b, err := os.ReadFile(filepath.Join(procDir, "net", "sockstat")); err == nil {
		k.Sockstat = strings.TrimSpace(string(b))
		k.TCPInuse, k.TCPAlloc, k.TCPMemPages, _ = parseSockstat(b)
	}
	if b, err := os.ReadFile(filepath.Join(procDir, "slabinfo")); err == nil {
		k.Slabs = parseSlabLines(b, kernelSlabs)
		for _, s := range k.Slabs {
			k.SlabTotal += s.Bytes
		}
	}
	if b, err := os.ReadFile(filepath.Join(procDir, "meminfo")); err == nil {
		k.MemAvail = parseMeminfo(b, "MemAvailable")
		k.SUnreclaim = parseMeminfo(b, "SUnreclaim")
	}
	return k
}

// perConn is the kernel's cost per held connection (client and server
// socket together): TCP buffer memory from sockstat's mem pages, and the
// socket slabs. conns ≤ 0 gives zeros.
func (k kernelMem) perConn(conns int) (tcpMem, slab float64) {
	if conns <= 0 {
		return 0, 0
	}
	return float64(k.TCPMemPages*k.PageSize) / float64(conns), float64(k.SlabTotal) / float64(conns)
}

// lines is the snapshot as the result's text shows it when a run stopped
// short: sockstat's TCP line, each slab, and the per-connection estimate.
func (k kernelMem) lines(conns int) []string {
	tcp, slab := k.perConn(conns)
	out := []string{fmt.Sprintf("kernel at %d connections held: sockstat TCP inuse %d alloc %d mem %d pages (%d MiB, %.0f B/conn); "+
		"socket slabs %d MiB (%.0f B/conn); MemAvailable %d MiB, SUnreclaim %d MiB",
		conns, k.TCPInuse, k.TCPAlloc, k.TCPMemPages, k.TCPMemPages*k.PageSize>>20, tcp, k.SlabTotal>>20, slab, k.MemAvail>>20, k.SUnreclaim>>20)}
	for _, s := range k.Slabs {
		out = append(out, fmt.Sprintf("slab %s: %d objs × %d B = %d MiB", s.Name, s.Active, s.ObjSize, s.Bytes>>20))
	}
	if k.Sockstat != "" {
		out = append(out, "sockstat: "+strings.ReplaceAll(k.Sockstat, "\n", "; "))
	}
	return out
}
