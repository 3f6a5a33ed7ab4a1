#!/usr/bin/env bash
# Runs `deno test` with the given arguments. Deno 2.9.6 sometimes dies with SIGSEGV at exit AFTER every test passed
# (about 1 run in 10 of src/transport, also on commits before this script; the crashing thread is inside deno, not
# libpluginshm; cause not found yet). Only that exact case is retried, once, and said loudly; any failed test, or a
# crash before the summary, fails as usual.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for try in 1 2; do
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  clean=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -cE '^ok \| [0-9]+ passed \| 0 failed')
  if [ "$rc" -eq 139 ] && [ "$clean" -ge 1 ] && [ "$try" -eq 1 ]; then
    echo "deno_suite: deno crashed with SIGSEGV at exit after all tests passed (known Deno teardown crash); running once more" >&2
    continue
  fi
  exit "$rc"
done
