#!/usr/bin/env bash
# Patroni, what users pick instead of Pacemaker, timed in network namespaces like the lab's:
# two PostgreSQL 15 nodes under Patroni 3.0 (Debian's `patroni`) and one etcd member
# (`etcd-server`) in a third namespace, on a bridge of its own, 10.99.7.0/24 only.
# For Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10) and then a tuned DCS
# configuration (ttl 10, loop_wait 2, retry_timeout 4), REPS times each:
#   failover    a writer (a psql loop per node address, from the etcd namespace) runs; the
#               leader's node gets a power cut (SIGKILL to its pid namespace's PID 1, then its
#               veth down and flushed, as `pgstack lab crash` does); measured from the cut to
#               the first insert acknowledged by the other node on its own address (no VIP);
#               acknowledged rows missing on the new leader are counted (replication is
#               asynchronous, Patroni's default); the cut node is then powered on again and
#               rejoins as a replica (the script records how: pg_rewind, reinit or neither)
#   switchover  `patronictl switchover --force`, measured from the command to the first
#               insert acknowledged by the new leader; lost rows counted the same way
# Prints every measurement and a table (median, min, max). Needs root; installs patroni,
# etcd-server and etcd-client with apt when they are missing. Everything it makes is named
# pgst-pat-* (namespaces) or lives in /tmp/pgst-pat, and is removed at exit, even on failure.
# usage: bench/patroni.sh [repetitions]   (default 5)
#   LOGS=DIR  copy the Patroni, PostgreSQL and etcd logs and the writers' logs there at exit
set -euo pipefail
SELF=$(readlink -f "$0")
D=/tmp/pgst-pat
NET=10.99.7
NS_BR=pgst-pat-br
NS_E=pgst-pat-e
E_ADDR=$NET.3
PGBIN=/usr/lib/postgresql/15/bin
NODES=(n1 n2)
PAUSE=0.2 # seconds between two inserts of one writer loop

ns() { echo "pgst-pat-$1"; }
addr() { echo "$NET.${1#n}"; }
now() { echo "$EPOCHREALTIME"; }
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*"; }
die() { log "FAILED: $*"; exit 1; }

# One insert every PAUSE s against one address, from the etcd namespace, each in a new psql
# connection as a client of a failing-over service reconnects; an acknowledged insert is
# logged as "time id server-address". psql runs as root with -U postgres (trust from the
# lab network) under `timeout -s KILL`: a dead address costs at most 3 s, a live one that
# is slow to answer on the loaded machine still gets its answer.
if [ "${1:-}" = _writer ]; then
  host=$2 tag=$3 out=$4 stop=$5 n=0
  while [ ! -e "$stop" ]; do
    n=$((n + 1))
    if r=$(timeout -s KILL 3 psql -XAtq "host=$host port=5432 user=postgres dbname=postgres connect_timeout=2" \
      -c "insert into w(id) values ('$tag-$n') returning inet_server_addr()" 2>/dev/null); then
      echo "$EPOCHREALTIME $tag-$n $r" >> "$out"
    fi
    sleep "$PAUSE"
  done
  exit 0
fi

REPS=${1:-5}
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
"$(dirname "$SELF")/../.ci/apt-ensure" <(printf '%s\n' patroni etcd-server etcd-client postgresql-15)

WRITERS=()
teardown() ( # a subshell: `set +e` stays in it
  set +e
  touch "$D/stop" 2> /dev/null
  if [ -n "${LOGS:-}" ] && [ -d "$D" ]; then
    mkdir -p "$LOGS"
    for f in "$D"/*/*.log "$D"/w-* "$D"/results; do
      [ -f "$f" ] && cp "$f" "$LOGS/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
  fi
  for p in "${WRITERS[@]}"; do kill "$p" 2> /dev/null; done
  # Every process of the namespaces this script made (the nodes' PID 1 first: the kernel
  # then ends the rest of their pid namespace), then the namespaces and the directory.
  for n in "${NODES[@]}" e; do
    [ -s "$D/$n/init.pid" ] && kill -KILL "$(cat "$D/$n/init.pid")" 2> /dev/null
  done
  for n in "${NODES[@]}" e br; do
    [ -e "/run/netns/$(ns "$n")" ] || continue
    for _ in 1 2 3 4 5; do
      pids=$(ip netns pids "$(ns "$n")")
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086 # one pid a word
      kill -KILL $pids 2> /dev/null
      sleep 0.2
    done
    ip netns delete "$(ns "$n")"
  done
  rm -rf "$D"
)
trap teardown EXIT
teardown # what a killed earlier run of this script left behind
trap 'exit 130' INT TERM

# Network: a bridge in its own namespace, one veth per namespace (nothing in the host's).
ip netns add "$NS_BR"
ip -n "$NS_BR" link set lo up
ip -n "$NS_BR" link add br0 type bridge
ip -n "$NS_BR" link set br0 type bridge forward_delay 0 stp_state 0
ip -n "$NS_BR" link set br0 up
for n in "${NODES[@]}" e; do
  a=$NET.${n#n}
  [ "$n" = e ] && a=$E_ADDR
  ip netns add "$(ns "$n")"
  ip -n "$(ns "$n")" link set lo up
  ip link add name eth0 netns "$(ns "$n")" type veth peer name "b$n" netns "$NS_BR"
  ip -n "$NS_BR" link set "b$n" master br0 up
  ip -n "$(ns "$n")" addr add "$a/24" dev eth0
  ip -n "$(ns "$n")" link set eth0 up
done
mkdir -p "$D/e"
chmod 755 "$D"

in_e() { ip netns exec "$NS_E" "$@"; }
sql() { # host, query: one row of output, or a failure within 2 s
  in_e timeout -s KILL 2 psql -XAtq "host=$1 port=5432 user=postgres dbname=postgres connect_timeout=1" -c "$2" 2> /dev/null
}
wait_for() { # description, seconds, command...: polls every 0.2 s
  local what=$1 lim=$2 t0
  shift 2
  t0=$(now)
  until "$@"; do
    awk -v a="$(now)" -v b="$t0" -v l="$lim" 'BEGIN {exit !(a - b > l)}' && die "$what: not within $lim s"
    sleep 0.2
  done
}

# A process in fresh pid and mount namespaces inside the node's network namespace, its PID 1
# recorded (SIGKILL to it is the power cut: the kernel kills the whole pid namespace).
boot() { # name, log, command...
  local n=$1 out=$2 u pid=
  shift 2
  setsid ip netns exec "$(ns "$n")" unshare --pid --fork --mount-proc --kill-child "$@" \
    >> "$out" 2>&1 < /dev/null &
  u=$!
  disown "$u" # its end at a power cut or at teardown is expected, not a job to report
  for _ in $(seq 1 50); do
    pid=$(pgrep -P "$u" || true)
    [ -n "$pid" ] && break
    sleep 0.1
  done
  [ -n "$pid" ] || die "no PID 1 for $n"
  echo "$pid" > "$D/$n/init.pid"
}

# etcd: one member, its data in /tmp/pgst-pat/e.
boot e "$D/e/etcd.log" etcd --name e --data-dir "$D/e/data" \
  --listen-client-urls "http://$E_ADDR:2379" --advertise-client-urls "http://$E_ADDR:2379" \
  --listen-peer-urls "http://$E_ADDR:2380" --initial-advertise-peer-urls "http://$E_ADDR:2380" \
  --initial-cluster "e=http://$E_ADDR:2380" --initial-cluster-state new
wait_for "etcd answering" 30 in_e etcdctl --endpoints "http://$E_ADDR:2379" endpoint health > /dev/null 2>&1

# Patroni per node: REST API on the node's address, PostgreSQL on it too (socket in the node's
# directory), etcd3 as DCS; the cluster-wide defaults written out as what Patroni uses anyway.
for n in "${NODES[@]}"; do
  mkdir -p "$D/$n"
  a=$(addr "$n")
  cat > "$D/$n/patroni.yml" << EOF
scope: pgst-pat
name: $n
restapi:
  listen: $a:8008
  connect_address: $a:8008
etcd3:
  hosts: $E_ADDR:2379
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      remove_data_directory_on_rewind_failure: true
      parameters:
        max_connections: 30
        shared_buffers: 16MB
        wal_keep_size: 128MB
  initdb:
    - encoding: UTF8
    - data-checksums
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host all all $NET.0/24 trust
    - host replication all $NET.0/24 trust
postgresql:
  listen: $a:5432
  connect_address: $a:5432
  data_dir: $D/$n/data
  bin_dir: $PGBIN
  pgpass: $D/$n/pgpass
  authentication:
    superuser:
      username: postgres
      password: pgst-pat
    replication:
      username: replicator
      password: pgst-pat
  parameters:
    unix_socket_directories: $D/$n
EOF
  chown -R postgres: "$D/$n"
done
ctl() { in_e patronictl -c "$D/n1/patroni.yml" "$@"; }
start_node() { # name: NIC up with its address (a reboot after a power cut), then Patroni
  local n=$1
  if ! ip -n "$(ns "$n")" -4 -o addr show dev eth0 | grep -q "inet $(addr "$n")/"; then
    ip -n "$(ns "$n")" addr add "$(addr "$n")/24" dev eth0
  fi
  ip -n "$(ns "$n")" link set eth0 up
  # The node's pid namespace is gone, so the pid in a postmaster.pid left by the cut names no
  # process of this node; in the new namespace that small pid may belong to anything.
  rm -f "$D/$n/data/postmaster.pid"
  boot "$n" "$D/$n/patroni.log" setpriv --reuid=postgres --regid=postgres --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$D/$n" LC_ALL=C.UTF-8 TZ=UTC \
    patroni "$D/$n/patroni.yml"
}
power_cut() { # name; the time of the cut
  local n=$1 t
  t=$(now)
  kill -KILL "$(cat "$D/$n/init.pid")"
  ip -n "$(ns "$n")" addr flush dev eth0
  ip -n "$(ns "$n")" link set eth0 down
  for _ in $(seq 1 50); do
    [ -z "$(ip netns pids "$(ns "$n")")" ] && break
    sleep 0.1
  done
  [ -z "$(ip netns pids "$(ns "$n")")" ] || die "processes left in $(ns "$n") after the cut"
  echo "$t"
}
is_primary() { [ "$(sql "$(addr "$1")" 'select pg_is_in_recovery()')" = f ]; }
streams_to() { # leader, replica: the replica's WAL receiver streams from the leader
  [ "$(sql "$(addr "$1")" "select count(*) from pg_stat_replication where state = 'streaming' and client_addr = '$(addr "$2")'")" = 1 ] &&
    [ "$(sql "$(addr "$2")" 'select pg_is_in_recovery()')" = t ]
}
other() { if [ "$1" = n1 ]; then echo n2; else echo n1; fi; }

log "bootstrap: n1 first (initdb), then n2 (basebackup)"
start_node n1
wait_for "n1 primary" 60 is_primary n1
start_node n2
wait_for "n2 streaming from n1" 90 streams_to n1 n2
sql "$(addr n1)" 'create table w (id text primary key, at timestamptz default now())' > /dev/null ||
  die "creating the writer's table"
: > "$D/lost"
rm -f "$D/stop"
for n in "${NODES[@]}"; do
  : > "$D/w-$n"
  ip netns exec "$NS_E" "$SELF" _writer "$(addr "$n")" "$n" "$D/w-$n" "$D/stop" &
  WRITERS+=("$!")
done
LEADER=n1

ACK=
acked_after() { # node, time: whether its writer got an insert acknowledged after it (time in ACK)
  ACK=$(awk -v t="$2" -v a="$(addr "$1")" '$1 > t && $3 == a {print $1; exit}' "$D/w-$1")
  [ -n "$ACK" ]
}
acked_since_restore() { # node, time, count
  [ "$(awk -v t="$2" '$1 > t' "$D/w-$1" | wc -l)" -ge "$3" ]
}
lost_rows() { # leader: acknowledged ids missing on it that no earlier check counted
  cat "$D"/w-n1 "$D"/w-n2 | awk '{print $2}' | sort > "$D/acked"
  sql "$(addr "$1")" 'select 1' > /dev/null || die "leader $1 not answering for the loss check"
  in_e timeout -s KILL 10 psql -XAtq "host=$(addr "$1") port=5432 user=postgres dbname=postgres" \
    -c 'select id from w' | sort > "$D/present"
  comm -23 "$D/acked" "$D/present" | comm -23 - <(sort "$D/lost") > "$D/new-lost"
  cat "$D/new-lost" >> "$D/lost"
  wc -l < "$D/new-lost"
}
rejoin_kind() { # node, log offset: how Patroni brought the former leader back
  local t
  t=$(tail -c +"$(($2 + 1))" "$D/$1/patroni.log")
  if grep -q 'bootstrap from leader' <<< "$t"; then
    echo reinit
  elif grep -q 'pg_rewind exit code=0' <<< "$t"; then
    echo pg_rewind
  elif grep -q 'running pg_rewind' <<< "$t"; then
    echo pg_rewind-failed
  else
    echo none
  fi
}

log_time() { # node, byte offset, text: the time of the first Patroni log line after the
  # offset that contains the text (Patroni writes local time, UTC here), or nothing
  local l
  l=$(tail -c +"$(($2 + 1))" "$D/$1/patroni.log" | grep -F -m1 "$3" | cut -c1-23 | tr , .) || true
  if [ -n "$l" ]; then date -u -d "$l" +%s.%N; fi
}
since() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "") print "-"; else printf "%.2f", a - b}'; }
LOCKED='promoted self to leader by acquiring session lock'

failover() { # mode, repetition, bound for the takeover (s)
  local mode=$1 r=$2 lim=$3 old=$LEADER new t_cut t1 fo lost off off_new t_up kind rj lk
  new=$(other "$old")
  wait_for "writes acknowledged by $old" 30 acked_since_restore "$old" "$(now)" 5
  off_new=$(stat -c %s "$D/$new/patroni.log")
  t_cut=$(power_cut "$old")
  wait_for "first write on $new after the cut of $old" "$lim" acked_after "$new" "$t_cut"
  t1=$ACK
  fo=$(since "$t1" "$t_cut")
  lk=$(since "$(log_time "$new" "$off_new" "$LOCKED")" "$t_cut")
  is_primary "$new" || die "$new answered a write but is not primary"
  lost=$(lost_rows "$new")
  LEADER=$new
  off=$(stat -c %s "$D/$old/patroni.log")
  t_up=$(now)
  start_node "$old"
  wait_for "$old rejoining as a replica of $new" 240 streams_to "$new" "$old"
  rj=$(since "$(now)" "$t_up")
  kind=$(rejoin_kind "$old" "$off")
  log "$mode failover $r: cut $old; $new took the leader lock after $lk s, answered a write after $fo s; lost $lost acknowledged rows; $old back as a streaming replica $rj s after its power-on ($kind)"
  echo "$mode failover $fo $lost $kind $rj $lk" >> "$D/results"
}

switchover() { # mode, repetition
  local mode=$1 r=$2 old=$LEADER new t0 t1 t_rq sw cmd lost off_old off_new rq lk
  new=$(other "$old")
  wait_for "writes acknowledged by $old" 30 acked_since_restore "$old" "$(now)" 5
  off_old=$(stat -c %s "$D/$old/patroni.log")
  off_new=$(stat -c %s "$D/$new/patroni.log")
  t0=$(now)
  ctl switchover --leader "$old" --candidate "$new" --force > "$D/switchover.out" 2>&1 ||
    die "patronictl switchover: $(tail -3 "$D/switchover.out")"
  cmd=$(since "$(now)" "$t0")
  wait_for "first write on $new after the switchover" 60 acked_after "$new" "$t0"
  t1=$ACK
  sw=$(since "$t1" "$t0")
  t_rq=$(log_time "$old" "$off_old" 'received switchover request')
  rq=$(since "$t_rq" "$t0")
  lk=$(since "$(log_time "$new" "$off_new" "$LOCKED")" "$t0")
  LEADER=$new
  wait_for "$old streaming from $new after the switchover" 120 streams_to "$new" "$old"
  lost=$(lost_rows "$new")
  log "$mode switchover $r: $old -> $new; request at $old after $rq s, $new took the lock after $lk s, answered a write after $sw s (patronictl returned after $cmd s); lost $lost"
  echo "$mode switchover $sw $lost - $cmd $lk $rq $(since "$t1" "$t_rq")" >> "$D/results"
}

: > "$D/results"
log "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); $(patroni --version), $(etcd --version | head -1)"
for mode in defaults tuned; do
  if [ "$mode" = tuned ]; then
    ctl edit-config --force -q -s ttl=10 -s loop_wait=2 -s retry_timeout=4 > /dev/null
    # Each member applies the DCS change at the start of its next HA loop (old loop_wait 10 s).
    sleep 22
  fi
  log "$mode: $(ctl show-config | grep -E '^(ttl|loop_wait|retry_timeout):' | tr '\n' ' ')"
  lim=120
  [ "$mode" = tuned ] && lim=60
  for r in $(seq 1 "$REPS"); do failover "$mode" "$r" "$lim"; done
  for r in $(seq 1 "$REPS"); do switchover "$mode" "$r"; done
done

echo
echo "Patroni $(patroni --version | awk '{print $2}'), etcd $(etcd --version | awk 'NR==1 {print $3}'), $REPS repetitions each, seconds, asynchronous replication:"
stats() { sort -n | awk '{a[NR]=$1} END {if (!NR) {printf "%7s %7s %7s", "-", "-", "-"; exit} m = NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%7.2f %7.2f %7.2f", m, a[1], a[NR]}'; }
col() { awk -v m="$1" -v c="$2" -v f="$3" '$1==m && $2==c && $f != "-" {print $f}' "$D/results"; }
printf '%-9s %-44s %7s %7s %7s\n' mode "" median min max
for mode in defaults tuned; do
  printf '%-9s %-44s %s\n' "$mode" "failover: cut -> first write on new leader" "$(col "$mode" failover 3 | stats)"
  printf '%-9s %-44s %s\n' "" "  cut -> new leader took the lock" "$(col "$mode" failover 7 | stats)"
  printf '%-9s %-44s %s\n' "" "  former leader: power-on -> streaming" "$(col "$mode" failover 6 | stats)"
  printf '%-9s %-44s %s\n' "" "switchover: command -> first write" "$(col "$mode" switchover 3 | stats)"
  printf '%-9s %-44s %s\n' "" "  command -> request at the leader" "$(col "$mode" switchover 8 | stats)"
  printf '%-9s %-44s %s\n' "" "  command -> new leader took the lock" "$(col "$mode" switchover 7 | stats)"
  printf '%-9s %-44s %s\n' "" "  request at the leader -> first write" "$(col "$mode" switchover 9 | stats)"
  printf '%-9s %-44s %s\n' "" "  patronictl switchover returned" "$(col "$mode" switchover 6 | stats)"
done
echo
for mode in defaults tuned; do
  for c in failover switchover; do
    l=$(col "$mode" "$c" 4 | awk '{s += $1} END {print s + 0}')
    k=$(col "$mode" "$c" 5 | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')
    echo "$mode $c: $l acknowledged rows lost in total${k:+; the former leader rejoined by $k}"
  done
done
