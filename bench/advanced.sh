#!/usr/bin/env bash
# The advanced stack (two UML guests, Corosync + Pacemaker, DRBD -> LVM -> XFS ->
# PostgreSQL -> VIP) with the reference agents (--set provider=heartbeat: linbit drbd,
# LVM-activate, Filesystem, pgsql, IPaddr2, LINBIT's crm-fence-peer.9.sh handlers) and with
# pgstack's, alternating, in one run. Each repetition: `pgstack lab up --stack advanced`,
# one managed migration (`pgstack cib migrate PGServer <other>` in the active guest; VIP
# stop begins -> VIP started on the other node, from both nodes' pacemaker.log), a writer
# started on the passive node, a power cut of the active node (-> first query answered
# through the VIP from the survivor), the writer's acknowledged rows checked, `lab down`.
# The cluster's own records split each figure: the exec times of the ten steps of the
# migration and of the promote + four starts of the takeover, as the CIB keeps them.
# Prints every measurement with the load average, then the medians.
# Needs root, UML (linux.uml, uml_switch) and an installed pgstack (PGSTACK_BIN).
# usage: bench/advanced.sh [repetitions]   (default 2; each takes 8-12 minutes here)
#   PGSTACK_BIN       the pgstack whose lab and agents run (default /usr/sbin/pgstack)
#   PGSTACK_ADV_DIR   the lab's state directory (default /tmp/pgst-adv; one per party)
#   PGSTACK_ADV_SETS  template variables given to both providers alike, space-separated
#                     KEY=VALUE (e.g. "drbd_monitor_timeout=60s"; default none)
set -euo pipefail
REPS=${1:-2}
PG=${PGSTACK_BIN:-/usr/sbin/pgstack}
DIR=${PGSTACK_ADV_DIR:-/tmp/pgst-adv}
SETS=()
for kv in ${PGSTACK_ADV_SETS:-}; do SETS+=(--set "$kv"); done
W=$(mktemp -d /tmp/pgst-bench-adv.XXXXXX)
# Only a lab this script can see in $DIR is taken down: `lab down` on a directory holding
# no UML pair would act on the namespace lab instead.
down() {
  if [ -e "$DIR/advanced.conf" ] || [ -e "$DIR/pair.conf" ]; then
    "$PG" lab --dir "$DIR" down >/dev/null 2>&1 || true
  fi
}
trap 'down; echo "(outputs kept in $W)"' EXIT
down

load() { cut -d' ' -f1 /proc/loadavg; }

failed() { # provider, step
  echo "$1: $2 FAILED:"; tail -8 "$W/$1-$R-$2.out" | sed 's/^/    /'
  echo "$1 $R $2" >> "$W/failures"
  down
  return 0
}

one() { # provider
  local p=$1 up mv mvcmd mvag tk lost fenced vip tkag l1 l2 l3 o
  o="$W/$p-$R"
  l1=$(load)
  "$PG" lab up --stack advanced --dir "$DIR" ${SETS[@]+"${SETS[@]}"} --set "provider=$p" > "$o-up.out" 2>&1 || { failed "$p" up; return 0; }
  up=$(sed -n 's/.*] up in \([0-9.]*\) s$/\1/p' "$o-up.out")
  l2=$(load)
  "$PG" lab --dir "$DIR" switchover > "$o-mv.out" 2>&1 || { failed "$p" mv; return 0; }
  # move n1 -> n2: S s (...; command C s; agents' own steps A s); on n1: ...
  read -r mv mvcmd mvag < <(sed -n "s/^move [^:]*: \([0-9.]*\) s (.*; command \([0-9.]*\) s; agents' own steps \([0-9.]*\) s); .*/\1 \2 \3/p" "$o-mv.out")
  grep -q "in order; constraint cleared" "$o-mv.out" || { echo "$p: migration not in order or constraint left:"; cat "$o-mv.out"; failed "$p" mv; return 0; }
  "$PG" lab --dir "$DIR" writer start > "$o-wr.out" 2>&1 || { failed "$p" wr; return 0; }
  sleep 5
  l3=$(load)
  "$PG" lab --dir "$DIR" crash > "$o-tk.out" 2>&1 || { failed "$p" tk; return 0; }
  # takeover n2 -> n1: T s to the first answer ... (node lost at M s, fencing at F s,
  # VIP started at V s; agents' own promote and starts A s; DRBD fence constraint placed)
  read -r tk lost fenced vip tkag < <(sed -n "s/^takeover [^:]*: \([0-9.]*\) s to the first answer through the VIP (node lost at \([0-9.?]*\)[ s]*, fencing at \([0-9.?]*\)[ s]*, VIP started at \([0-9.?]*\)[ s]*; agents' own promote and starts \([0-9.?]*\)[ s]*; .*/\1 \2 \3 \4 \5/p" "$o-tk.out")
  grep -q "DRBD fence constraint placed" "$o-tk.out" || echo "$p: no DRBD fence constraint after the takeover"
  "$PG" lab --dir "$DIR" writer check > "$o-wc.out" 2>&1 || { echo "$p: writer check:"; cat "$o-wc.out"; }
  rows=$(sed -n 's/^writer: \([0-9]*\) acknowledged rows, all present.*/\1/p' "$o-wc.out")
  down
  if [ -z "$up" ] || [ -z "$mv" ] || [ -z "$tk" ]; then
    echo "unparsed output for $p"; cat "$o"-*.out; return 1
  fi
  echo "$p $up $mv $mvcmd $mvag $tk $lost $fenced $vip $tkag ${rows:-LOST} $l1/$l2/$l3" | tee -a "$W/all"
}

echo "template variables set for both providers: ${PGSTACK_ADV_SETS:-none (the defaults)}"
echo "provider up migration command mig-agents takeover lost fenced vip-started tk-agents writer-rows load(up/mig/tk) (seconds)"
for R in $(seq 1 "$REPS"); do
  one heartbeat
  one pgstack
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -v p="$1" -v c="$2" '$1==p && $c != "?" {print $c}' "$W/all" | median; }
echo
echo "medians of $REPS runs each (2 UML guests, fencing on, power cut):"
printf '%-40s %10s %10s %8s\n' "" heartbeat pgstack ratio
i=2
for name in "up" "migration (VIP stop -> VIP started)" "  pgstack cib migrate command" \
  "  agents' own ten steps" "takeover (power cut -> first answer)" "  node lost" "  fencing logged" \
  "  VIP started" "  agents' own promote + starts"; do
  h=$(col heartbeat $i); o=$(col pgstack $i)
  printf '%-40s %10s %10s %8s\n' "$name" "$h" "$o" "$(awk -v h="$h" -v o="$o" 'BEGIN {if (h>0 && o>0) printf "%.2fx", o/h; else print "-"}')"
  i=$((i+1))
done
if [ -s "$W/failures" ]; then
  echo "failed repetitions (not in the medians):"; sed 's/^/  /' "$W/failures"
fi
