#!/usr/bin/env bash
# Monitor of ocf:pgstack:postgresql vs ocf:heartbeat:pgsql vs a bare `psql -c 'select 1'`
# on one running PostgreSQL 15 cluster (hyperfine -N, same run), plus the peak RSS of
# each (/usr/bin/time -f %M). Root. The cluster lives in /tmp/pgst-pg-bench and is
# removed at exit.
#   PGSTACK_OCF_DIR  directory of the installed shims (default /usr/lib/ocf/resource.d/pgstack)
set -euo pipefail
OCF_DIR=${PGSTACK_OCF_DIR:-/usr/lib/ocf/resource.d/pgstack}
BIN=/usr/lib/postgresql/15/bin
D=/tmp/pgst-pg-bench
PORT=56480
RUNS=${RUNS:-30}
cleanup() {
  [ -f "$D/data/postmaster.pid" ] && (cd / && runuser -u postgres -- "$BIN/pg_ctl" stop -D "$D/data" -m immediate >/dev/null 2>&1) || true
  rm -rf "$D"
}
trap cleanup EXIT
cleanup
mkdir -p "$D/sock" && chown -R postgres: "$D"
(cd / && runuser -u postgres -- "$BIN/initdb" -D "$D/data" -A trust --no-sync >/dev/null)
common=(OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench HA_LOGFACILITY=none
  OCF_RESKEY_CRM_meta_interval=15000 OCF_RESKEY_CRM_meta_timeout=30000
  OCF_RESKEY_pgdata="$D/data" OCF_RESKEY_pgport=$PORT OCF_RESKEY_socketdir="$D/sock")
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${common[@]}" OCF_RESKEY_logfile="$D/log" \
  OCF_RESKEY_start_opts="-c listen_addresses=''" "$OCF_DIR/postgresql" start
ours=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${common[@]}" "$OCF_DIR/postgresql" monitor)
theirs=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${common[@]}" OCF_RESKEY_pgctl=$BIN/pg_ctl
  OCF_RESKEY_psql=$BIN/psql /usr/lib/ocf/resource.d/heartbeat/pgsql monitor)
psql=(runuser -u postgres -- $BIN/psql -X -h "$D/sock" -p $PORT -d template1 -Atc 'select 1')
for c in ours theirs psql; do
  eval "\"\${$c[@]}\"" >/dev/null 2>&1 || { echo "$c monitor fails" >&2; exit 1; }
done
q() { printf '%q ' "$@"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$D/bench.json" \
  -n 'postgresql monitor' "$(q "${ours[@]}")" \
  -n 'pgsql monitor' "$(q "${theirs[@]}")" \
  -n "psql -c 'select 1'" "$(q "${psql[@]}")" >/dev/null
python3 - "$D/bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print("| command | median [ms] | mean [ms] | min [ms] | max [ms] |")
print("|:---|---:|---:|---:|---:|")
for x in r:
    print("| %s | %.1f | %.1f | %.1f | %.1f |" % (x["command"], x["median"]*1e3, x["mean"]*1e3, x["min"]*1e3, x["max"]*1e3))
m = {x["command"]: x["median"] for x in r}
print("\nours / pgsql median: %.3f; ours / psql median: %.3f" % (
    m["postgresql monitor"] / m["pgsql monitor"], m["postgresql monitor"] / m["psql -c 'select 1'"]))
PY
echo
echo "peak RSS (KiB, /usr/bin/time -f %M, max of 5 runs):"
rss() {
  local -n cmd=$1
  local m=0 r
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f %M -o "$D/rss" "${cmd[@]}" >/dev/null 2>&1
    r=$(tail -1 "$D/rss")
    [ "$r" -gt "$m" ] && m=$r
  done
  echo "  $1: $m"
}
rss ours; rss theirs; rss psql
