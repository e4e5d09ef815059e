#!/usr/bin/env bash
# The packaging step of `make test` (issue 18 item 5): builds the Debian
# package (make deb), installs it here with dpkg -i, checks its files,
# modes and the halley user, runs the installed unit's ExecStart line (read
# from the unit file, not retyped) as the halley user with the installed
# config, checks /healthz and a graceful stop, then purges the package and
# checks nothing is left. It refuses to run over an existing halley
# installation, and its EXIT trap stops the server and purges the package
# whatever fails, so the machine is left as it was found.
# Needs root and dpkg; skips (and says why) without them. DEB=path tests a
# package already built. Closes with "deb: N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0
skip() { echo "--- SKIP debian package: $*"; echo "deb: 0 passed, 0 failed, 1 skipped"; exit 0; }
ok() { passed=$((passed + 1)); echo "--- PASS $*"; }
bad() { failed=$((failed + 1)); echo "--- FAIL $*"; }
# check NAME CMD...: one case, passed when CMD succeeds.
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}
finish() { echo "deb: $passed passed, $failed failed, $skipped skipped"; [ "$failed" -eq 0 ]; }

[ "$(id -u)" -eq 0 ] || skip "not root (dpkg -i needs root)"
command -v dpkg >/dev/null && command -v dpkg-deb >/dev/null || skip "dpkg is missing (not a Debian system)"
for c in adduser curl flock setpriv; do
    command -v "$c" >/dev/null || skip "$c is missing"
done

# One run at a time on a machine (two checkouts running make test at
# once would install the same package and user): wait for the other.
exec 9>/tmp/halley-debtest.lock
flock -w 600 9 || { bad "another debtest held /tmp/halley-debtest.lock for 10 minutes"; finish; exit 1; }

# What the package would install or create must not exist yet: the test
# purges at the end and must never take an operator's installation with it.
if dpkg-query -W -f='${Status}' halley 2>/dev/null | grep -q 'installed\|config-files\|unpacked'; then
    bad "a halley package is already installed here: refusing to test over it"; finish; exit 1
fi
for p in /usr/bin/halley /lib/systemd/system/halley.service /etc/halley /var/lib/halley; do
    if [ -e "$p" ]; then bad "$p exists already: refusing to test over it"; finish; exit 1; fi
done
if getent passwd halley >/dev/null || getent group halley >/dev/null; then
    bad "a halley user or group exists already: refusing to test over it"; finish; exit 1
fi

tmp=$(mktemp -d)
pid=
installed=
spid= hpid=
cleanup() {
    # The server under strace (spid: strace, hpid: halley): the server
    # first, or strace's death would leave it running detached.
    local c
    if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
        for c in $hpid $(pgrep -P "$spid"); do kill -KILL "$c" 2>/dev/null; done
        kill -KILL "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    if [ -n "$installed" ]; then
        dpkg --purge halley >/dev/null 2>&1 || echo "cleanup: dpkg --purge halley failed"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- build
deb=${DEB:-}
if [ -z "$deb" ]; then
    if ! make -s deb >"$tmp/build.txt" 2>&1; then
        bad "make deb"; tail -n 30 "$tmp/build.txt"; finish; exit 1
    fi
    deb=$(ls -t dist/halley_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n1)
fi
if [ -f "$deb" ]; then ok "make deb builds $deb"; else bad "make deb left no dist/halley_*_$(dpkg --print-architecture).deb"; finish; exit 1; fi

# --- install
installed=1
if DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$tmp/install.txt" 2>&1; then
    ok "dpkg -i installs it"
else
    bad "dpkg -i"; cat "$tmp/install.txt"; finish; exit 1
fi

# mode PATH WANT: stat's "mode owner:group" of PATH equals WANT.
mode() {
    local got
    got=$(stat -c '%a %U:%G' "$1" 2>&1)
    [ "$got" = "$2" ] || { echo "    $1: got $got, want $2"; return 1; }
}
check "/usr/bin/halley is 0755 root" mode /usr/bin/halley "755 root:root"
check "the unit is /lib/systemd/system/halley.service, 0644 root" mode /lib/systemd/system/halley.service "644 root:root"
check "/etc/halley/halley.toml is 0644 root" mode /etc/halley/halley.toml "644 root:root"
check "/etc/halley/halley.toml is a conffile" \
    bash -c "dpkg-query -W -f='\${Conffiles}' halley | grep -q '^ */etc/halley/halley.toml '"
user_ok() {
    local ent uid shell
    ent=$(getent passwd halley) || { echo "    no halley user"; return 1; }
    uid=$(echo "$ent" | cut -d: -f3); shell=$(echo "$ent" | cut -d: -f7)
    # A system user: a uid in the system range, no login shell.
    [ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] ||
        { echo "    halley user: $ent"; return 1; }
    getent group halley >/dev/null || { echo "    no halley group"; return 1; }
}
check "a halley system user and group, no login shell" user_ok
check "/var/lib/halley is 0700 halley" mode /var/lib/halley "700 halley:halley"

unit=/lib/systemd/system/halley.service
if command -v systemd-analyze >/dev/null; then
    # verify checks the unit's syntax, every option name and that ExecStart's
    # binary exists; without a running systemd it still runs offline.
    if systemd-analyze verify "$unit" >"$tmp/verify.txt" 2>&1 && ! grep -v '^$' "$tmp/verify.txt" | grep -q .; then
        ok "systemd-analyze verify halley.service"
    else
        bad "systemd-analyze verify halley.service"; sed 's/^/    /' "$tmp/verify.txt"
    fi
    # The sandboxing stays: systemd's own exposure score (0 best, 10
    # worst; 1.5 today), failing above 2.0 (--threshold is in tenths).
    if systemd-analyze security --offline=yes --threshold=20 "$unit" >"$tmp/security.txt" 2>&1; then
        ok "systemd-analyze security: exposure $(grep -o 'exposure level for [^:]*: [0-9.]*' "$tmp/security.txt" | awk '{print $NF}') (at most 2.0)"
    else
        bad "systemd-analyze security: exposure above 2.0"; grep -v '✓' "$tmp/security.txt" | sed 's/^/    /'
    fi
else
    skipped=$((skipped + 2))
    echo "--- SKIP systemd-analyze verify and security: systemd-analyze is missing"
fi

# docs/deploy.md's configure step: the installed file parses, and its
# settings are the ones in effect.
config_ok() {
    local out
    out=$(setpriv --reuid=halley --regid=halley --init-groups -- /usr/bin/halley config print --config /etc/halley/halley.toml 2>&1) ||
        { echo "$out" | sed 's/^/    /'; return 1; }
    grep -Eq '^data +file +/var/lib/halley$' <<<"$out" && grep -Eq '^listen +file +127\.0\.0\.1:8080$' <<<"$out" &&
        grep -Eq '^trusted-proxy +file +127\.0\.0\.1/32$' <<<"$out" || { echo "$out" | sed 's/^/    /'; return 1; }
}
check "halley config print: data, listen and trusted-proxy come from /etc/halley/halley.toml" config_ok

# --- run the unit's ExecStart line as its User=, as systemd would
# ExecStart, User= and WorkingDirectory= come from the installed unit. The
# port is a free one given as a flag (flag beats file), so the test does
# not collide with anything on 8080; the data directory, trusted proxies
# and the rest come from /etc/halley/halley.toml.
unitval() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
exec_line=$(unitval ExecStart)
exec_line=${exec_line#[-@:+!]}
user=$(unitval User)
workdir=$(unitval WorkingDirectory)
nofile=$(unitval LimitNOFILE)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
read -r -a argv <<<"$exec_line"
# Without systemd the unit's sandbox cannot be applied, but its file
# system part can be approximated in a private mount namespace: every
# mount read-only but the state directory (ProtectSystem=strict), empty
# /tmp and /var/tmp (PrivateTmp), empty read-only /home and /root
# (ProtectHome); setpriv adds NoNewPrivileges and an empty capability
# bounding set (CapabilityBoundingSet=). A server that writes outside
# /var/lib/halley fails here as it would under systemd.
sandbox=(env)
sandboxed="no sandbox (unshare -m is not allowed here)"
# shellcheck disable=SC2016 # expanded by the inner shell
sandbox_sh='set -e
state=$1; shift
mount --make-rprivate /
mount --bind "$state" "$state"
findmnt -rn -o TARGET | while read -r m; do
    case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$state") ;;
    *) mount -o bind,remount,ro "$m" 2>/dev/null || true ;; esac
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
for d in /home /root; do [ -d "$d" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$d"; done
if touch /etc/.halley-debtest 2>/dev/null; then rm -f /etc/.halley-debtest; echo "sandbox: /etc is writable"; exit 1; fi
exec "$@"'
if unshare -m --propagation private true 2>/dev/null; then
    sandbox=(unshare -m --propagation private bash -c "$sandbox_sh" sandbox "$workdir")
    sandboxed="read-only file system but $workdir, private /tmp, no /home, no capabilities"
fi
echo "    running as $user ($sandboxed): ${argv[*]} --listen 127.0.0.1:$port"
(
    cd "$workdir" || exit 1
    umask 0077
    ulimit -n "$nofile" 2>/dev/null || true
    exec "${sandbox[@]}" setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs \
        --bounding-set=-all --inh-caps=-all \
        env -i PATH=/usr/bin:/bin HOME="$workdir" "${argv[@]}" --listen "127.0.0.1:$port"
) >"$tmp/serve.txt" 2>&1 &
pid=$!
healthz=
for _ in $(seq 1 100); do
    healthz=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz") && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ "$healthz" = '{"code":"ok"}' ]; then
    ok "ExecStart as $user ($sandboxed): /healthz answers {\"code\":\"ok\"}"
else
    bad "ExecStart as $user: /healthz answered '$healthz'"; head -n 20 "$tmp/serve.txt" | sed 's/^/    /'
fi
owner() {
    local u
    u=$(stat -c %U /proc/"$pid" 2>/dev/null) || { echo "    the server is not running"; return 1; }
    [ "$u" = "$user" ] || { echo "    the server runs as $u"; return 1; }
}
check "the server runs as $user" owner
# The approximated sandbox is really around the server.
sandbox_ok() {
    local st
    st=$(cat /proc/"$pid"/status 2>/dev/null) || { echo "    the server is not running"; return 1; }
    grep -Eq '^NoNewPrivs:\s+1$' <<<"$st" && grep -Eq '^CapBnd:\s+0+$' <<<"$st" && grep -Eq '^CapEff:\s+0+$' <<<"$st" ||
        { grep -E '^(NoNewPrivs|Cap)' <<<"$st" | sed 's/^/    /'; return 1; }
    awk '$5 == "/" { split($6, o, ","); if (o[1] != "ro") exit 1 }' /proc/"$pid"/mountinfo ||
        { echo "    / is not read-only for the server"; return 1; }
}
if [ "${sandbox[0]}" = unshare ]; then
    check "the server has no capabilities, no new privileges, a read-only /" sandbox_ok
fi
# The config file's data directory is the one in use: the store and the
# admin socket are there, owned by halley, 0600 and the socket 0600 (C-14).
store_ok() {
    local f bad=0
    [ -S /var/lib/halley/admin.sock ] || { echo "    no /var/lib/halley/admin.sock"; bad=1; }
    [ -n "$(find /var/lib/halley -type f | head -n1)" ] || { echo "    no store files in /var/lib/halley"; bad=1; }
    while read -r f; do echo "    $f"; bad=1; done < <(find /var/lib/halley -mindepth 1 \( -not -user "$user" -o \( -type f -perm /077 \) -o \( -type d -perm /077 \) \) -printf '%p %m %u\n')
    [ $bad -eq 0 ]
}
check "the store is in /var/lib/halley (the config's data), owned by $user, no group/other access" store_ok
# docs/deploy.md's account step: the CLI as halley reaches the running
# server through the admin socket in the data directory.
account_ok() {
    local out
    out=$(setpriv --reuid="$user" --regid="$user" --init-groups -- /usr/bin/halley account --data /var/lib/halley add shop 2>&1) &&
        grep -q '^added shop$' <<<"$out" || { echo "    $out" | head -n 5; return 1; }
    out=$(setpriv --reuid="$user" --regid="$user" --init-groups -- /usr/bin/halley account --data /var/lib/halley list 2>&1) &&
        grep -q shop <<<"$out" || { echo "    $out" | head -n 5; return 1; }
}
check "halley account add/list as $user through the admin socket of the running server" account_ok
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    rc=0; wait "$pid" || rc=$?
    pid=
    if [ $rc -eq 0 ]; then ok "SIGTERM (systemd's stop) exits 0"; else bad "SIGTERM: exit $rc"; sed 's/^/    /' "$tmp/serve.txt"; fi
else
    bad "the server died early (its output is above)"; pid=
fi

# --- the unit's SystemCallFilter against what the server really calls
# Without systemd the filter cannot be applied, so the server runs again
# under strace (as halley, with the installed config) through what a
# deployment does: start, a synced write (fdatasync), a long-poll read,
# an SSE stream, a WebSocket, the admin socket (halley account), /metrics,
# SO_REUSEPORT listeners, SIGTERM. Every system call it made must be in
# the unit's allow list and not in its deny list, expanded by
# systemd-analyze syscall-filter. A call outside would fail with EPERM
# under systemd (SystemCallErrorNumber=).
# expand GROUP prints the system calls of a systemd syscall group, nested
# groups expanded.
expand() {
    systemd-analyze syscall-filter "$1" 2>/dev/null | sed -n 's/^ \{4\}\([-@a-z0-9_]*\).*/\1/p' |
        while read -r x; do case $x in @*) expand "$x" ;; ?*) echo "$x" ;; esac; done
}
syscalls_ok() {
    local i key ok=0 f
    : >"$tmp/allow.txt"; : >"$tmp/deny.txt"
    # A line starting with ~ is a deny list as a whole, others allow lists.
    while read -r f; do
        local to="$tmp/allow.txt"
        case $f in '~'*) to="$tmp/deny.txt"; f=${f#\~} ;; esac
        for g in $f; do
            case $g in @*) expand "$g" ;; *) echo "$g" ;; esac
        done >>"$to"
    done < <(sed -n 's/^SystemCallFilter=//p' "$unit")
    sort -u -o "$tmp/allow.txt" "$tmp/allow.txt"; sort -u -o "$tmp/deny.txt" "$tmp/deny.txt"
    [ -s "$tmp/allow.txt" ] || { echo "    the unit's SystemCallFilter= expands to nothing"; return 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (
        cd "$workdir" || exit 1
        umask 0077
        exec strace -f -qq -o "$tmp/strace.txt" setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs \
            env -i PATH=/usr/bin:/bin HOME="$workdir" "${argv[@]}" --listen "127.0.0.1:$port" --reuseport
    ) >"$tmp/serve2.txt" 2>&1 &
    spid=$!
    for i in $(seq 1 100); do
        [ "$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz")" = '{"code":"ok"}' ] && break
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.1
    done
    hpid=$(pgrep -n -x halley -P "$spid") || hpid=$(pgrep -n -f "127.0.0.1:$port --reuseport" | grep -vx "$spid")
    key=$(setpriv --reuid="$user" --regid="$user" --init-groups -- /usr/bin/halley account --data /var/lib/halley add strace |
        sed -n 's/^api_key: *\([0-9a-f]*\).*/\1/p')
    curl -s --max-time 5 -d "api_key=$key&qname=strace-q&msg=synced" "http://127.0.0.1:$port/write" | grep -q '"code":"ok"' ||
        { echo "    the write under strace failed"; ok=1; }
    curl -s --max-time 5 "http://127.0.0.1:$port/read?qname=strace-q&timeout=1" | grep -q synced || { echo "    the read under strace failed"; ok=1; }
    curl -s --max-time 1 "http://127.0.0.1:$port/read/sse?qname=strace-q" >/dev/null
    curl -s --max-time 1 --http1.1 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
        -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "http://127.0.0.1:$port/read/ws?qname=strace-q" >/dev/null
    curl -s --max-time 5 "http://127.0.0.1:$port/metrics" >/dev/null
    [ -n "$hpid" ] && kill -TERM "$hpid"
    wait "$spid"
    spid= hpid=
    # The calls before execve are setpriv's and env's, not the server's.
    awk '/execve\("\/usr\/bin\/halley"/ { on = 1 } on' "$tmp/strace.txt" |
        awk '{ l = $0; sub(/^[0-9]+ +/, "", l); if (match(l, /^[a-z_0-9]+\(/)) print substr(l, 1, RLENGTH - 1) }' | sort -u >"$tmp/used.txt"
    [ -s "$tmp/used.txt" ] || { echo "    strace recorded no system calls of halley"; head -n 5 "$tmp/serve2.txt" | sed 's/^/    /'; return 1; }
    local out
    out=$(comm -23 "$tmp/used.txt" "$tmp/allow.txt"; comm -12 "$tmp/used.txt" "$tmp/deny.txt")
    [ -z "$out" ] || { echo "    called but filtered by the unit: $(echo $out)"; ok=1; }
    # RestrictAddressFamilies= likewise: every socket() family it opened.
    local fams want
    want=" $(sed -n 's/^RestrictAddressFamilies=//p' "$unit" | tail -n1) "
    fams=$(awk '/execve\("\/usr\/bin\/halley"/ { on = 1 } on' "$tmp/strace.txt" | grep -o 'socket(AF_[A-Z0-9]*' | sed 's/socket(//' | sort -u)
    for f in $fams; do
        [[ $want == *" $f "* ]] || { echo "    opened a socket of family $f, outside RestrictAddressFamilies=$want"; ok=1; }
    done
    [ $ok -eq 0 ] && echo "    $(wc -l <"$tmp/used.txt") distinct system calls, socket families $(echo $fams): all allowed"
    return $ok
}
if command -v strace >/dev/null && command -v systemd-analyze >/dev/null && strace -qq -o /dev/null true 2>/dev/null; then
    check "every system call of the server (start, write, read, SSE, WebSocket, admin socket, SIGTERM) passes the unit's SystemCallFilter and RestrictAddressFamilies" syscalls_ok
else
    skipped=$((skipped + 1))
    echo "--- SKIP the unit's SystemCallFilter against the server's calls: strace or systemd-analyze is missing, or ptrace is not allowed"
fi

# --- purge
if dpkg --purge halley >"$tmp/purge.txt" 2>&1; then ok "dpkg --purge halley"; else bad "dpkg --purge"; cat "$tmp/purge.txt"; fi
installed=
gone() {
    local bad=0 p
    if dpkg-query -W -f='${Status}' halley 2>/dev/null | grep -q .; then
        echo "    dpkg still knows halley: $(dpkg-query -W -f='${Status}' halley)"; bad=1
    fi
    for p in /usr/bin/halley /lib/systemd/system/halley.service /etc/halley /var/lib/halley /usr/share/doc/halley; do
        [ -e "$p" ] && { echo "    $p is left"; bad=1; }
    done
    getent passwd halley >/dev/null && { echo "    the halley user is left"; bad=1; }
    getent group halley >/dev/null && { echo "    the halley group is left"; bad=1; }
    [ $bad -eq 0 ]
}
check "after purge: no files, no data, no user or group" gone
finish
