#!/usr/bin/env bash
# Builds halley, starts it on a free port with short limits (so the suite
# can check timeouts and retention quickly), runs `halley conform` against
# it with those settings, and ends with C-11 (SIGTERM drain) via --pid.
# Extra arguments go to `halley conform`, e.g. --rules CF-L,X-0 or --json.
# HALLEY_SERVER=PATH runs another build's `serve` and `account` (an older or
# deliberately broken one) under this tree's suite.
set -uo pipefail
cd "$(dirname "$0")/.."
go build -o bin/halley ./cmd/halley || exit 1
server=${HALLEY_SERVER:-$PWD/bin/halley}
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log="$data/server.log"
settings=(--ez-max-queue 50 --ez-max-age 6s --read-batch 20 --header-timeout 3s --idle-timeout 5s --ping-interval 2s
    --cf-replay-window 8s --cf-resume-window 4s --max-identifiers 20 --trusted-proxy 127.0.0.1/32
    --max-conns-per-ip 200 --read-batch-bytes 65536)
"$server" serve --data "$data/db" --listen "127.0.0.1:$port" "${settings[@]}" >"$data/stdout" 2>"$log" &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
# The server prints the demo account it created on an empty data directory
# (A-03); wait for its start-up lines and pass on what it printed.
for _ in $(seq 50); do
    grep -q "serving" "$data/stdout" 2>/dev/null && break
    sleep 0.1
done
mapfile -t demo < <(python3 - "$data/stdout" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
for flag, pattern in (("--demo-key", r"(?<![a-z_])api_key[=:\s]+([0-9a-f]{32})\b"),
                      ("--demo-cf-key", r"\bcf_api_key[=:\s]+([0-9a-f]{32})\b"),
                      ("--demo-secret", r"\bapi_secret[=:\s]+([A-Za-z0-9_-]{24,})")):
    m = re.search(pattern, out)
    if m:
        print(flag)
        print(m.group(1))
PY
)
# The demo-only endpoints (A-03): loopback clients only.
demo+=(--demo-push-path /demo/push --demo-write-path /demo/write)
creds() { "$server" account --data "$data/db" add "$1" --json; }
a1=$(creds conf1) && a2=$(creds conf2) || { echo "could not create accounts"; cat "$log"; exit 1; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"; }
# A server that prints no cf_api_key has one key for both APIs: pass it
# as both, and A-01 says what is wrong.
cfkey() {
    local k
    k=$(field "$1" cf_api_key)
    if [ -z "$k" ]; then
        echo "conform.sh: 'account add --json' printed no cf_api_key; passing api_key as --cf-key too" >&2
        k=$(field "$1" api_key)
    fi
    echo "$k"
}
./bin/halley conform --target "http://127.0.0.1:$port" \
    --user "$(field "$a1" username)" --key "$(field "$a1" api_key)" --cf-key "$(cfkey "$a1")" --secret "$(field "$a1" api_secret)" \
    --user2 "$(field "$a2" username)" --key2 "$(field "$a2" api_key)" --cf-key2 "$(cfkey "$a2")" --secret2 "$(field "$a2" api_secret)" \
    "${demo[@]}" "${settings[@]}" "$@" \
    --account-cmd "$server account --data $data/db" --data "$data/db" --pid "$pid"
rc=$?
if [ $rc -ne 0 ]; then
    echo "--- server log (tail) ---"
    tail -n 40 "$log"
fi
exit $rc
