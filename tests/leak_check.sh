#!/usr/bin/env bash
# Runs after the suites: fails if any segment of ours is left in /dev/shm or
# any test peer process is still running.
set -u
status=0
left=$(ls /dev/shm 2>/dev/null | grep '^pshm-' || true)
if [ -n "$left" ]; then
  echo "leak check: segments left in /dev/shm:"; echo "$left"; status=1
fi
peers=$(pgrep -f 'tests/peers/|zig-out/bin/c_peer|bench/_' || true)
if [ -n "$peers" ]; then
  echo "leak check: peer processes still running:"; ps -o pid,args -p $(echo $peers | tr ' ' ,); status=1
fi
[ $status -eq 0 ] && echo "leak check: no segments in /dev/shm, no peer processes left"
exit $status
