#!/usr/bin/env bash
# The lab side by side: the same 2-node cluster and scenario (pgstack lab up, one managed
# move, one power cut of the active node) with the reference agents (--set
# provider=heartbeat: Filesystem, pgsql, IPaddr2) and with pgstack's, alternating, in one
# run. Prints every measurement and the medians: time to up, managed move, crash takeover
# (total, membership detection, Pacemaker, the agents' own starts, client reconnect).
# Needs root and an installed pgstack (make lab / make install).
# usage: bench/lab.sh [repetitions]   (default 5)
# LAB_BENCH_LOGS=DIR keeps each takeover's output and both nodes' pacemaker.log in DIR.
set -euo pipefail
REPS=${1:-5}
PG=${PGSTACK_BIN:-/usr/sbin/pgstack}
W=$(mktemp -d /tmp/pgst-bench-lab.XXXXXX)
trap '"$PG" lab down --dir /tmp/pgst-lab >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
"$PG" lab down --dir /tmp/pgst-lab >/dev/null 2>&1 || true

failed() { # provider, step: shows why, keeps the run going (the medians use the rest)
  echo "$1: $2 FAILED:"; sed 's/^/    /' "$W/$2.out" | tail -5
  echo "    the nodes' logs on it:"
  grep -h -E "(error|warning): .*(pg_fs|pg_db|pg_vip)|Result of start operation for pg_" \
    /tmp/pgst-lab/n*/log-pacemaker/pacemaker.log 2>/dev/null | tail -8 | sed 's/^/    /'
  echo "$1 $2" >> "$W/failures"
  "$PG" lab down --dir /tmp/pgst-lab > /dev/null 2>&1 || true
  return 0
}

one() { # provider
  local p=$1 up mv tk
  "$PG" lab up --stack shared --set "provider=$p" > "$W/up.out" 2>&1 || { failed "$p" up; return 0; }
  up=$(sed -n 's/.*] up in \([0-9.]*\) s$/\1/p' "$W/up.out")
  "$PG" lab switchover > "$W/mv.out" 2>&1 || { failed "$p" mv; return 0; }
  mv=$(sed -n 's/^move [^:]*: \([0-9.]*\) s .*/\1/p' "$W/mv.out")
  grep -q 'in order; constraint cleared' "$W/mv.out" || { echo "move not in order:"; cat "$W/mv.out"; return 1; }
  "$PG" lab crash > "$W/tk.out" 2>&1 || { failed "$p" tk; return 0; }
  # takeover T s = membership M s + pacemaker P s + agents A s + client C s
  if [ -n "${LAB_BENCH_LOGS:-}" ]; then
    local k="$LAB_BENCH_LOGS/$p-$(date +%H%M%S)"
    mkdir -p "$k"; cp "$W/tk.out" "$k/"
    for n in /tmp/pgst-lab/n*; do cp "$n/log-pacemaker/pacemaker.log" "$k/$(basename "$n").log" 2>/dev/null || true; done
  fi
  tk=$(sed -n 's/^takeover \([0-9.]*\) s = membership \([0-9.]*\) s + pacemaker \([0-9.]*\) s + agents \([0-9.]*\) s + client \(-\{0,1\}[0-9.]*\) s$/\1 \2 \3 \4 \5/p' "$W/tk.out")
  "$PG" lab down --dir /tmp/pgst-lab > "$W/down.out" 2>&1 || { cat "$W/down.out"; return 1; }
  [ -n "$up" ] && [ -n "$mv" ] && [ -n "$tk" ] || { echo "unparsed output for $p"; cat "$W"/*.out; return 1; }
  echo "$p $up $mv $tk" | tee -a "$W/all"
}

echo "provider up move takeover membership pacemaker agents client (seconds)"
for r in $(seq 1 "$REPS"); do
  one heartbeat
  one pgstack
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v p="$1" -v c="$2" '$1==p {print $c}' "$W/all" | median; }
echo
echo "medians of $REPS runs each (2 nodes, token 1000 ms, fencing on, power cut):"
printf '%-22s %10s %10s %8s\n' "" heartbeat pgstack ratio
i=2
for name in "up" "managed move" "takeover total" "  membership" "  pacemaker" "  agents' starts" "  client reconnect"; do
  h=$(col heartbeat $i); o=$(col pgstack $i)
  printf '%-22s %10s %10s %8s\n' "$name" "$h" "$o" "$(awk -v h="$h" -v o="$o" 'BEGIN {if (h>0) printf "%.2fx", o/h; else print "-"}')"
  i=$((i+1))
done
o_tot=$(col pgstack 4); o_mem=$(col pgstack 5)
echo "pgstack takeover / membership floor of the same run: $(awk -v t="$o_tot" -v m="$o_mem" 'BEGIN {printf "%.2fx", t/m}')"
if [ -s "$W/failures" ]; then
  echo "failed repetitions (not in the medians):"; sed 's/^/  /' "$W/failures"
fi
