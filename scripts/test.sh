#!/usr/bin/env bash
# The whole test run behind `make test`: installs what it needs, then
# lint, unit tests (race, shuffled; the crash test is one of them), the
# conformance suite against a freshly built and started server, the
# Debian package (scripts/debtest.sh: install, run, purge; root only), and
# the browser tests (browsertest/run.sh: the JS clients in headless chromium).
# Closes with one line: "total: N passed, M failed, K skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed_steps=()

step() { printf '\n=== %s\n' "$*"; }

step "modules"
go mod download || failed_steps+=(modules)

step "lint: gofmt, go vet, staticcheck"
make -s lint || failed_steps+=(lint)

step "unit tests: go test -race -shuffle=on ./..."
go test -race -shuffle=on -count=1 -v ./... >"$logs/unit.txt" 2>&1
unit_rc=$?
grep -E '^(ok|FAIL|---|panic:)' "$logs/unit.txt" | grep -vE '^--- PASS' || true
if [ $unit_rc -ne 0 ]; then
    failed_steps+=(unit)
    echo "--- each failed test with what it logged ---"
    # With -v a test's log lines come between its === RUN and its
    # --- FAIL line: print that span (the last 150 lines of it).
    grep -oE '^\s*--- FAIL: [^ ]+' "$logs/unit.txt" | awk '{print $3}' | sort -u | head -n 20 |
        while read -r name; do
            echo "----- $name"
            awk -v n="$name" '$0 == "=== RUN   " n || $0 == "=== CONT  " n { buf = "" ; p = 1 }
                p { buf = buf $0 "\n" }
                p && index($0, "--- FAIL: " n " ") { printf "%s", buf; p = 0 }' "$logs/unit.txt" | tail -n 150
        done
    echo "--- unit test output (tail) ---"
    tail -n 60 "$logs/unit.txt"
fi
grep -E '^\s*--- SKIP' -B1 "$logs/unit.txt" | sed 's/^/  /' || true
u_pass=$(grep -cE '^\s*--- PASS' "$logs/unit.txt")
u_fail=$(grep -cE '^\s*--- FAIL' "$logs/unit.txt")
u_skip=$(grep -cE '^\s*--- SKIP' "$logs/unit.txt")
echo "unit: $u_pass passed, $u_fail failed, $u_skip skipped"

step "allocation budgets (P5), without -race: go test -run Allocs ./..."
go test -count=1 -run 'Allocs' -v ./... >"$logs/allocs.txt" 2>&1 || failed_steps+=(allocs)
grep -E '^(ok|FAIL|\s*--- (FAIL|SKIP))' "$logs/allocs.txt" || true
a_pass=$(grep -cE '^\s*--- PASS' "$logs/allocs.txt")
a_fail=$(grep -cE '^\s*--- FAIL' "$logs/allocs.txt")
u_pass=$((u_pass + a_pass)); u_fail=$((u_fail + a_fail))
echo "allocation budgets: $a_pass passed, $a_fail failed"

step "conformance suite against a fresh server"
bash scripts/conform.sh | tee "$logs/conform.txt"
conf_rc=${PIPESTATUS[0]}
[ "$conf_rc" -eq 0 ] || failed_steps+=(conformance)
# counts PREFIX FILE prints "passed failed skipped" from FILE's last line
# "PREFIX<n> passed, <n> failed, <n> skipped", or "0 1 0" when it has none
# (the step died before counting).
counts() {
    local line
    line=$(grep -E "^$1[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped\$" "$2" | tail -n1)
    if [ -z "$line" ]; then echo "0 1 0"; return; fi
    echo "${line#"$1"}" | awk '{print $1, $3, $5}'
}
read -r c_pass c_fail c_skip < <(counts "" "$logs/conform.txt")

step "debian package: make deb, dpkg -i, the unit's ExecStart as halley, purge"
bash scripts/debtest.sh | tee "$logs/deb.txt"
deb_rc=${PIPESTATUS[0]}
[ "$deb_rc" -eq 0 ] || failed_steps+=(deb)
read -r d_pass d_fail d_skip < <(counts "deb: " "$logs/deb.txt")

step "browser tests: the JS clients in headless chromium against halley"
bash browsertest/run.sh | tee "$logs/browser.txt"
b_rc=${PIPESTATUS[0]}
[ "$b_rc" -eq 0 ] || failed_steps+=(browser)
read -r b_pass b_fail b_skip < <(counts "browser: " "$logs/browser.txt")

echo
echo "unit tests:   $u_pass passed, $u_fail failed, $u_skip skipped"
echo "conformance:  $c_pass passed, $c_fail failed, $c_skip skipped"
echo "deb package:  $d_pass passed, $d_fail failed, $d_skip skipped"
echo "browser:      $b_pass passed, $b_fail failed, $b_skip skipped"
if [ ${#failed_steps[@]} -ne 0 ]; then
    echo "failed steps: ${failed_steps[*]}"
fi
# A failed step without counted cases of its own (modules, lint, a unit
# build failure) still counts as one failure.
extra=0
for s in "${failed_steps[@]}"; do
    case $s in
        unit|allocs) [ "$u_fail" -eq 0 ] && extra=$((extra + 1)) ;;
        conformance) [ "$c_fail" -eq 0 ] && extra=$((extra + 1)) ;;
        deb) [ "$d_fail" -eq 0 ] && extra=$((extra + 1)) ;;
        browser) [ "$b_fail" -eq 0 ] && extra=$((extra + 1)) ;;
        *) extra=$((extra + 1)) ;;
    esac
done
total_fail=$((u_fail + c_fail + d_fail + b_fail + extra))
echo "total: $((u_pass + c_pass + d_pass + b_pass)) passed, $total_fail failed, $((u_skip + c_skip + d_skip + b_skip)) skipped"
[ ${#failed_steps[@]} -eq 0 ]
