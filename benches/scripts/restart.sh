#!/usr/bin/env bash
# Restart time of a kept data directory: copies SRC afresh each round,
# starts BINARY on it, and times until PING answers (then kill -9), with
# the resident memory and the engine's own "recovered the case log" line.
#   SRC=/path/to/data benches/scripts/restart.sh BINARY [ROUNDS] [PORT]
set -euo pipefail
bin=$1 rounds=${2:-3} port=${3:-7799}
: "${SRC:?set SRC to a data directory}"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$work"' EXIT
for i in $(seq "$rounds"); do
  rm -rf "$work/data"
  cp -a "$SRC" "$work/data"
  sync
  t0=$(date +%s.%N)
  GRIDLINE_LOG=gridline_engine=info "$bin" serve --data "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
  pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port" && echo PING >&3 && timeout 0.5 head -c1 <&3 | grep -q .) 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "the server did not start" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s.%N)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  echo "round $i: $(echo "$t1 - $t0" | bc) s, rss $((rss / 1024)) MiB; $(sed 's/\x1b\[[0-9;]*m//g' "$work/serve.log" | grep -o 'recovered the case log.*' || true)"
done
