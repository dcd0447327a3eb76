#!/bin/sh
# Run each fuzz target FUZZ_SECONDS seconds (make fuzz builds them into build/fuzz). Inputs it
# finds go to build/fuzz/corpus/TARGET; a crash to build/fuzz/crashes/. Copy a crash into
# tests/fuzz/regressions/TARGET/ once fixed: every run replays those and the seeds first.
# FUZZ_SECONDS=0 replays them only. FUZZ_TARGETS="server json" runs those alone.
# One "ok"/"not ok" line per target, then the count.
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
bin=build/fuzz
case $seconds in
  ''|*[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac
for exe in $bin/fuzz_sse $bin/fuzz_server $bin/fuzz_lua; do
  [ -x "$exe" ] || { echo "fuzz: $exe is missing; run 'make fuzz' (it builds the targets first)" >&2; exit 2; }
done
mkdir -p $bin/crashes
passed=0 failed=0
targets=${FUZZ_TARGETS:-sse server json credentials markup translate}
for t in $targets; do
  case $t in
    sse|server) exe=$bin/fuzz_$t; script= ;;
    json|credentials|markup|translate) exe=$bin/fuzz_lua; script=tests/fuzz/lua/$t.lua ;;
    *) echo "fuzz: no target '$t' (sse server json credentials markup translate)" >&2; exit 2 ;;
  esac
  corpus=$bin/corpus/$t
  mkdir -p "$corpus" "tests/fuzz/regressions/$t"
  if [ "$seconds" -eq 0 ]; then
    limit="-runs=0"
  else
    limit="-max_total_time=$seconds"
  fi
  log=$bin/$t.log
  FUZZ_LUA=$script "$exe" $limit -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$bin/crashes/$t-" "$corpus" "tests/fuzz/seeds/$t" "tests/fuzz/regressions/$t" > "$log" 2>&1
  status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if [ "$status" -eq 0 ]; then
    echo "ok - fuzz $t: ${runs:-?} inputs in ${seconds} s, nothing found"
    passed=$((passed + 1))
  else
    echo "not ok - fuzz $t: exit $status (log: $log)"
    grep -a -m 12 -E 'ERROR|SUMMARY|fuzz_lua:|Test unit written|^ *#[0-9] ' "$log" | sed 's/^/#   /'
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
