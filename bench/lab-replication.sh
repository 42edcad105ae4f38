#!/usr/bin/env bash
# The lab's replication stack side by side: the same 2-node cluster and scenario (pgstack lab
# up --stack replication, one switchover, one power cut of the primary, the crashed node
# restored as a standby, then the bare `pg_ctl promote -w` on that standby with the cluster in
# maintenance mode) with PAF (--set provider=heartbeat: pgsqlms, IPaddr2) and with pgstack's
# agents, alternating, in one run. Prints every measurement and the medians: switchover,
# failover (total, membership detection, Pacemaker, the agents' own actions, client
# reconnect) and the promote floor of the same lab.
# pgstack's side runs only when its postgresql agent advertises promote (its promotable mode).
# Needs root and an installed pgstack (make lab / make install).
# usage: bench/lab-replication.sh [repetitions]   (default 5)
set -euo pipefail
REPS=${1:-5}
PG=${PGSTACK_BIN:-/usr/sbin/pgstack}
OCF=${PGSTACK_OCF_DIR:-/usr/lib/ocf/resource.d/pgstack}
W=$(mktemp -d /tmp/pgst-bench-repl.XXXXXX)
trap '"$PG" lab down --dir /tmp/pgst-lab >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
"$PG" lab down --dir /tmp/pgst-lab >/dev/null 2>&1 || true

providers="heartbeat"
if OCF_ROOT=/usr/lib/ocf "$OCF/postgresql" meta-data 2>/dev/null | grep -q '<action name="promote"'; then
  providers="heartbeat pgstack"
else
  echo "pgstack: not measured: $OCF/postgresql does not advertise promote (no promotable mode in this build)"
fi

failed() { # provider, step: shows why, keeps the run going (the medians use the rest)
  echo "$1: $2 FAILED:"; sed 's/^/    /' "$W/$2.out" | tail -5
  echo "$1 $2" >> "$W/failures"
  "$PG" lab down --dir /tmp/pgst-lab > /dev/null 2>&1 || true
  return 0
}

one() { # provider
  local p=$1 up mv tk fl standby
  "$PG" lab up --stack replication --set "provider=$p" > "$W/up.out" 2>&1 || { failed "$p" up; return 0; }
  up=$(sed -n 's/.*] up in \([0-9.]*\) s$/\1/p' "$W/up.out")
  "$PG" lab switchover > "$W/mv.out" 2>&1 || { failed "$p" mv; return 0; }
  mv=$(sed -n 's/^move [^:]*: \([0-9.]*\) s .*/\1/p' "$W/mv.out")
  grep -q 'in order; constraint cleared' "$W/mv.out" || { echo "$p: switchover not in order:"; cat "$W/mv.out"; }
  "$PG" lab crash > "$W/tk.out" 2>&1 || { failed "$p" tk; return 0; }
  # takeover T s = membership M s + pacemaker P s + agents A s + client C s
  tk=$(sed -n 's/^takeover \([0-9.]*\) s = membership \([0-9.]*\) s + pacemaker \([0-9.]*\) s + agents \([0-9.]*\) s + client \(-\{0,1\}[0-9.]*\) s$/\1 \2 \3 \4 \5/p' "$W/tk.out")
  standby=$(sed -n 's/^\(n[0-9]\): power cut; .*/\1/p' "$W/tk.out")
  # the agent's own promote on the survivor (the promote action's exec time), seconds
  pr=$(sed -n "s/^agents' actions: promote \([0-9]*\) ms.*/\1/p" "$W/tk.out" | awk '{printf "%.3f", $1/1000}')
  "$PG" lab restore > "$W/rs.out" 2>&1 || { failed "$p" rs; return 0; }
  "$PG" lab promote-floor "$standby" > "$W/fl.out" 2>&1 || { failed "$p" fl; return 0; }
  fl=$(sed -n 's/^pg_ctl promote -w on [^:]*: \([0-9.]*\) s .*/\1/p' "$W/fl.out")
  "$PG" lab down --dir /tmp/pgst-lab > "$W/down.out" 2>&1 || { cat "$W/down.out"; return 1; }
  [ -n "$up" ] && [ -n "$mv" ] && [ -n "$tk" ] && [ -n "$fl" ] && [ -n "$pr" ] || { echo "unparsed output for $p"; cat "$W"/*.out; echo "$p unparsed" >> "$W/failures"; return 0; }
  echo "$p $up $mv $tk $fl $pr" | tee -a "$W/all"
}

echo "provider up switchover failover membership pacemaker agents client promote-floor promote (seconds)"
for r in $(seq 1 "$REPS"); do
  for p in $providers; do one "$p"; done
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { [ -s "$W/all" ] || { echo -; return; }; awk -v p="$1" -v c="$2" '$1==p {print $c}' "$W/all" | median; }
echo
echo "medians of $REPS runs each (2 nodes, token 1000 ms, fencing on, asynchronous, power cut):"
printf '%-22s %10s %10s %8s\n' "" PAF pgstack ratio
i=2
for name in "up" "switchover" "failover total" "  membership" "  pacemaker" "  agents' actions" "  client reconnect" "pg_ctl promote -w" "the agent's promote"; do
  h=$(col heartbeat $i); o=$(col pgstack $i)
  printf '%-22s %10s %10s %8s\n' "$name" "$h" "$o" "$(awk -v h="$h" -v o="$o" 'BEGIN {if (h>0 && o>0) printf "%.2fx", o/h; else print "-"}')"
  i=$((i+1))
done
# The agent's promote (in the failover) against the bare pg_ctl promote -w floor of the same
# provider's lab, medians.
for p in $providers; do
  awk -v p="$p" -v f="$(col "$p" 9)" -v a="$(col "$p" 10)" 'BEGIN {if (f>0 && a>0) printf "%s: the promote action %.3f s = %.2fx the floor %.3f s\n", p, a, a/f, f}'
done
if [ -s "$W/failures" ]; then
  echo "failed repetitions (not in the medians):"; sed 's/^/  /' "$W/failures"
fi
