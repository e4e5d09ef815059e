package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// parseVmRSS returns VmRSS in bytes from the text of /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) < 1 {
			break
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %v", err)
		}
		mult := int64(1024)
		if len(f) >= 2 {
			switch strings.ToLower(f[1]) {
			case "kb":
				mult = 1024
			case "mb":
				mult = 1024 * 1024
			case "b":
				mult = 1
			default:
				return 0, fmt.Errorf("VmRSS: unknown unit %q", f[1])
			}
		}
		return v * mult, nil
	}
	return 0, fmt.Errorf("no VmRSS line (kernel thread or zombie?)")
}

// readRSS reads the resident set size of one process, in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// parseStatPPID returns the parent pid from the text of /proc/PID/stat
// ("pid (comm) state ppid ..."; comm may hold spaces and parentheses).
func parseStatPPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("bad stat")
	}
	return strconv.Atoi(f[1])
}

// procRoot is where the process tree is read; tests point it at a fake.
const procRoot = "/proc"

// treePIDs is pid and all its descendants (children, grandchildren, …),
// from the ppid links of every procDir/<pid>/stat read once: a cluster's
// nodes are children of the started pid (and maybe theirs), and the harness
// never assumes their pids.
func treePIDs(procDir string, pid int) []int {
	paths, _ := filepath.Glob(filepath.Join(procDir, "[0-9]*", "stat"))
	kids := map[int][]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone since the glob
		}
		pp, err := parseStatPPID(b)
		if err != nil {
			continue
		}
		c, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil && c != pid {
			kids[pp] = append(kids[pp], c)
		}
	}
	out := []int{pid}
	seen := map[int]bool{pid: true}
	for i := 0; i < len(out); i++ {
		for _, c := range kids[out[i]] {
			if !seen[c] { // a pid reused while we read cannot loop us
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// treeRSSAt sums VmRSS over pid's whole process tree under procDir, and
// says how many processes it counted. The root must be readable; a
// descendant gone meanwhile is skipped.
func treeRSSAt(procDir string, pid int) (rss int64, procs int, err error) {
	for i, p := range treePIDs(procDir, pid) {
		b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(p), "status"))
		if err == nil {
			var r int64
			if r, err = parseVmRSS(b); err == nil {
				rss += r
				procs++
				continue
			}
		}
		if i == 0 {
			return 0, 0, fmt.Errorf("pid %d: %v", pid, err)
		}
	}
	return rss, procs, nil
}

// treeRSS is the RSS of pid and every process under it (an nginx master
// and its workers, a cluster and its nodes; a single server alone).
func treeRSS(pid int) (int64, error) {
	r, _, err := treeRSSAt(procRoot, pid)
	return r, err
}

// parseSockstatTCPMem returns the "mem" field (pages) of the TCP line of
// /proc/net/sockstat.
func parseSockstatTCPMem(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if f[i] == "mem" {
				return strconv.ParseInt(f[i+1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no TCP mem in sockstat")
}

// readTCPMemBytes is the kernel's TCP memory (all sockets of the machine,
// clients included), in bytes.
func readTCPMemBytes() (int64, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0, err
	}
	p, err := parseSockstatTCPMem(b)
	return p * int64(os.Getpagesize()), err
}

// slope is (b-a)/(nb-na): bytes per connection between two samples.
func slope(a, b int64, na, nb int) (float64, error) {
	if nb == na {
		return 0, fmt.Errorf("equal connection counts %d", na)
	}
	return float64(b-a) / float64(nb-na), nil
}

// socketSlabs are the slab caches that grow with TCP sockets.
var socketSlabs = []string{"TCP", "sock_inode_cache", "tcp_bind_bucket", "request_sock_TCP"}

// parseSlabBytes sums active_objs × objsize of the named caches from the
// text of /proc/slabinfo.
func parseSlabBytes(b []byte, names []string) int64 {
	var total int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		for _, n := range names {
			if f[0] != n {
				continue
			}
			active, err1 := strconv.ParseInt(f[1], 10, 64)
			size, err2 := strconv.ParseInt(f[3], 10, 64)
			if err1 == nil && err2 == nil {
				total += active * size
			}
		}
	}
	return total
}

// readSocketSlabBytes is the kernel slab memory of sockets (0 when
// /proc/slabinfo is not readable).
func readSocketSlabBytes() int64 {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return 0
	}
	return parseSlabBytes(b, socketSlabs)
}

// parseStatCPU returns utime+stime (clock ticks) from the text of
// /proc/PID/stat.
func parseStatCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// after "(comm)": state(0) ppid(1) ... utime(11) stime(12)
	if len(f) < 13 {
		return 0, fmt.Errorf("bad stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad stat times")
	}
	return u + s, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// treeCPUAt is the CPU time (user+system, seconds) of pid and every
// process under it, read under procDir.
func treeCPUAt(procDir string, pid int) (float64, error) {
	var total int64
	for i, p := range treePIDs(procDir, pid) {
		b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(p), "stat"))
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		t, err := parseStatCPU(b)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return float64(total) / clockTicks, nil
}

// treeCPU is the CPU time of pid and every process under it. A child that
// exited is no longer counted (its time moves to the parent's cutime,
// which is not read): compare samples of a tree whose members live.
func treeCPU(pid int) (float64, error) { return treeCPUAt(procRoot, pid) }

// treeFDs counts the open files of each process in pid's tree under
// procDir and returns the fewest and the most: the nodes of a cluster
// share one port by SO_REUSEPORT, whose hash spreads connections only
// roughly evenly, and a node reaching the 20,000 open-file limit refuses
// the rest. Unreadable processes are skipped.
func treeFDs(procDir string, pid int) (least, most int) {
	least = -1
	for _, p := range treePIDs(procDir, pid) {
		f, err := os.Open(filepath.Join(procDir, strconv.Itoa(p), "fd"))
		if err != nil {
			continue
		}
		n := 0
		for {
			names, err := f.Readdirnames(4096)
			n += len(names)
			if err != nil {
				break
			}
		}
		f.Close()
		most = max(most, n)
		if least < 0 || n < least {
			least = n
		}
	}
	return max(least, 0), most
}
