#!/usr/bin/env bash
# Builds halley, starts it on a free port with short limits (so the suite
# can check timeouts and retention quickly), runs `halley conform` against
# it with those settings, and ends with C-11 (SIGTERM drain) via --pid.
# Extra arguments go to `halley conform`, e.g. --rules CF-L,X-0 or --json.
set -uo pipefail
cd "$(dirname "$0")/.."
go build -o bin/halley ./cmd/halley || exit 1
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log="$data/server.log"
settings=(--ez-max-queue 50 --ez-max-age 6s --read-batch 20 --header-timeout 3s --idle-timeout 5s --ping-interval 2s
    --cf-replay-window 8s --cf-resume-window 4s --max-identifiers 20 --trusted-proxy 127.0.0.1/32)
./bin/halley serve --data "$data/db" --listen "127.0.0.1:$port" "${settings[@]}" >"$data/stdout" 2>"$log" &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
creds() { ./bin/halley account --data "$data/db" add "$1" --json; }
a1=$(creds conf1) && a2=$(creds conf2) || { echo "could not create accounts"; cat "$log"; exit 1; }
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
./bin/halley conform --target "http://127.0.0.1:$port" \
    --user "$(field "$a1" username)" --key "$(field "$a1" api_key)" --secret "$(field "$a1" api_secret)" \
    --user2 "$(field "$a2" username)" --key2 "$(field "$a2" api_key)" --secret2 "$(field "$a2" api_secret)" \
    "${settings[@]}" "$@" \
    --account-cmd "$PWD/bin/halley account --data $data/db" --pid "$pid"
rc=$?
if [ $rc -ne 0 ]; then
    echo "--- server log (tail) ---"
    tail -n 40 "$log"
fi
exit $rc
