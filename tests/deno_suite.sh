#!/usr/bin/env bash
# Runs `deno test` with the given arguments. Deno 2.9.6 sometimes dies with SIGSEGV at exit AFTER every test passed
# (about 1 run in 10 of src/transport, also on commits before this script; the crashing thread is inside deno, not
# libpluginshm; cause not found yet), sometimes before it printed the summary line. Only that case is retried, once,
# and said loudly: every test reported ok and none failed. Any failed test fails as usual.
set -uo pipefail
# Test files must run one at a time: the leak checks read /proc/self/fd, /dev/shm and child pids, which all test
# workers of one process share, so a file running beside another sees its sockets (an inspector connection, a 2 s
# close test) as leaks. Deno 2.9.6 takes even --parallel=false as --parallel.
for arg in "$@"; do
  case "$arg" in
  --parallel*)
    echo "deno_suite: $arg runs test files side by side in one process and breaks their leak checks; leave it out" >&2
    exit 2
    ;;
  esac
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for try in 1 2; do
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  # All passed: the summary says so, or the crash came before the summary with every test reported so far ok.
  clean=$(printf '%s\n' "$plain" | grep -cE '^ok \| [0-9]+ passed \| 0 failed')
  oks=$(printf '%s\n' "$plain" | grep -cE ' \.\.\. ok \(')
  bad=$(printf '%s\n' "$plain" | grep -cE ' \.\.\. (FAILED|ignored)|^error:')
  if [ "$clean" -eq 0 ] && [ "$oks" -ge 1 ] && [ "$bad" -eq 0 ]; then clean=1; fi
  if [ "$rc" -eq 139 ] && [ "$clean" -ge 1 ] && [ "$try" -eq 1 ]; then
    echo "deno_suite: deno crashed with SIGSEGV at exit after all tests passed (known Deno teardown crash); running once more" >&2
    continue
  fi
  exit "$rc"
done
