#!/usr/bin/env bash
# Runs after the suites: fails if any segment of ours is left in /dev/shm or
# any test peer process is still running. Reads /proc directly, so it needs
# no procps on a fresh machine.
set -u
status=0
left=$(ls /dev/shm 2>/dev/null | grep '^pshm-' || true)
if [ -n "$left" ]; then
  echo "leak check: segments left in /dev/shm:"; echo "$left"; status=1
fi
peers=""
for dir in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' 2>/dev/null < "$dir/cmdline") || continue
  case "$cmd" in
    *tests/peers/*|*zig-out/bin/c_peer*|*bench/_*|*examples/plugins/*|*tests/fixtures/*) peers+="${dir#/proc/} $cmd"$'\n' ;;
  esac
done
if [ -n "$peers" ]; then
  echo "leak check: peer or plugin processes still running:"; printf '%s' "$peers"; status=1
fi
# Private read-only copies a verifier ran plugins from (docs/integrity.md): removed when nothing runs from them
# and when the verifier closes; "beside" copies (.<name>.verified-*) sit next to this checkout's plugin dirs.
copies=$(ls -d "${TMPDIR:-/tmp}"/plugin-shm-verified-* 2>/dev/null || true)
here=$(cd "$(dirname "$0")/.." && pwd)
beside=$(find "$here/examples" "$here/tests" -maxdepth 4 -name '.*.verified-*' 2>/dev/null || true)
copies="$copies${copies:+${beside:+$'\n'}}$beside"
if [ -n "$copies" ]; then
  echo "leak check: verified plugin copies left:"; echo "$copies"; status=1
fi
# Doorbell sockets (src/transport/_doorbell.ts): each in its own private directory plugin-shm-bell-<pid>-*, removed
# once the plugin connected or the listener closed. A directory of a process still running is in use, not a leak.
bells=""
for dir in "${TMPDIR:-/tmp}"/plugin-shm-bell-*; do
  [ -d "$dir" ] || continue
  pid=${dir##*/plugin-shm-bell-}; pid=${pid%%-*}
  [ -d "/proc/$pid" ] || bells+="$dir"$'\n'
done
if [ -n "$bells" ]; then
  echo "leak check: doorbell socket directories of exited processes left:"; printf '%s' "$bells"; status=1
fi
[ $status -eq 0 ] && echo "leak check: no segments in /dev/shm, no peer or plugin processes, no verified copies or doorbells left"
exit $status
