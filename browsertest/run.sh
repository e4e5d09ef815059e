#!/usr/bin/env bash
# The browser step of `make test` (SPEC JS): installs what it needs on a
# fresh Debian machine (Debian's chromium and nginx-light; the npm packages pinned in the
# package-lock.json of jsclient/ and browsertest/), checks that
# jsclient/dist is what esbuild builds from jsclient/src byte for byte,
# builds halley, and runs browsertest/run.mjs: real halley processes, real
# pages, headless chromium. Arguments filter tests by name. Closes with
# "browser: N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

fail() { echo "$*"; echo "browser: 0 passed, 1 failed, 0 skipped"; exit 1; }

if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
        fail "could not install chromium"
fi
if [ ! -x /usr/sbin/nginx ]; then
    # The nginx tests (proxy.test.mjs) run deploy/nginx.conf in nginx-light.
    # A policy-rc.d saying no keeps the package from starting a system
    # nginx on port 80 (the tests start their own).
    echo "installing Debian's nginx-light"
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null)
    rc=$?
    [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || fail "could not install nginx-light"
fi
command -v openssl >/dev/null || fail "openssl is missing (the nginx tests make a certificate with it)"
command -v node >/dev/null || fail "node is missing (Node.js 20+ is needed)"
for d in jsclient browsertest; do
    # npm ci wipes and reinstalls; skip it when this lock file was installed.
    stamp="$d/node_modules/.installed-lock.json"
    if ! cmp -s "$d/package-lock.json" "$stamp"; then
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in $d failed"
        cp "$d/package-lock.json" "$stamp"
    fi
done
node jsclient/build.mjs --check || fail "jsclient/dist is stale: run make js and commit it"
go build -o bin/halley ./cmd/halley || fail "go build failed"
HALLEY_BIN="$PWD/bin/halley" node browsertest/run.mjs "$@"
