#!/usr/bin/env bash
# Runs audit_stall.py against BINARY serving a fresh copy of SRC (a data
# directory with many cases, e.g. one the e2e bench's E2E_BIG run left), on
# PORT, and prints how many snapshots the engine took and folds the audit
# thread made (from its debug log).
#   SRC=/path/to/data benches/scripts/audit_stall.sh BINARY PORT audits 4 25
#   SRC=... benches/scripts/audit_stall.sh BINARY PORT none 60
#   SRC=... benches/scripts/audit_stall.sh BINARY PORT close
set -euo pipefail
bin=$1 port=$2
shift 2
: "${SRC:?set SRC to a data directory}"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$work"' EXIT
cp -r "$SRC" "$work/data"
GRIDLINE_LOG=gridline_engine=debug "$bin" serve --data "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "the server did not start" >&2; exit 1; }
  sleep 0.1
done
python3 "$(dirname "$0")/audit_stall.py" "$port" "$work/data" "$@"
echo "snapshots $(grep -c 'snapshot taken' "$work/serve.log" || true), folds $(grep -c 'audit folded' "$work/serve.log" || true)"
