#!/bin/sh
# Run every test suite; each prints one "ok"/"not ok" line per test. Ends with
# "N passed, N failed" and exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."
kimictl=${KIMICTL:-./kimictl}   # the binary under test, and the C tests built with it
bin=${TESTBIN:-build/tests}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# suite NAME COMMAND...: a suite that exits non-zero without saying which test failed
# (a crash, a missing binary) counts as one failure of its own.
suite() {
  name=$1
  shift
  echo "== $name"
  suite_out=$(mktemp)
  "$@" > "$suite_out" 2>&1
  status=$?
  if [ "$status" -ne 0 ] && ! grep -q '^not ok ' "$suite_out"; then
    echo "not ok - $name: exited with status $status" >> "$suite_out"
  fi
  cat "$suite_out" >> "$log"
  grep -av '^ok ' "$suite_out" || true
  rm -f "$suite_out"
}

# lua-cjson's own suite, against our patched copy: one line for the whole of it.
upstream_cjson() {
  if cjson_out=$("$bin"/test_json --upstream build/src/cjson/tests 2>&1); then
    echo "ok - upstream lua-cjson suite: $(echo "$cjson_out" | grep -ac ': PASS') checks"
  else
    echo "not ok - upstream lua-cjson suite"
    echo "$cjson_out" | grep -a 'FAIL\|Summary' | sed 's/^/#   /'
  fi
}

suite "C: SSE parser" "$bin"/test_sse
suite "C: credential store locks" "$bin"/test_lock
suite "C: lua-cjson patches" "$bin"/test_json
suite "C: lua-cjson upstream" upstream_cjson
suite "C: built-in trust anchors" "$bin"/test_anchors "${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
suite "C: libuv and http-parser" "$bin"/test_uv
suite "Lua units (run by kimictl)" env KIMICTL_TEST_ENV_URL=http://from-env/v1/ "$kimictl" lua tests/lua/harness.lua tests/lua/test_*.lua
suite "End to end" python3 tests/e2e/run.py

passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
