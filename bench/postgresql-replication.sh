#!/usr/bin/env bash
# Monitor of a primary and of a streaming standby: ocf:pgstack:postgresql (replication
# mode) against PAF's ocf:heartbeat:pgsqlms, on the same two PostgreSQL 15 servers, in the
# same place: a live one-node Pacemaker 2.1.5 (corosync + pacemakerd in network, mount,
# pid and uts namespaces of their own, maintenance-mode=true so that it runs nothing
# itself) whose attrd, CIB and crm_* tools both agents use, as they do in a cluster
# (pgsqlms calls crm_resource, crm_node and crm_master; pgstack crm_node, crm_attribute).
# Both servers run inside the node's pid namespace (pgsqlms checks the postmaster with
# pg_ctl status), on unix sockets only. The four commands run round-robin, N rounds, the
# order rotated every round; medians and quartiles per command. Root.
#   bench/postgresql-replication.sh [ROUNDS]      (default 30)
#   PGSTACK_OCF_DIR  directory of the installed shims (default /usr/lib/ocf/resource.d/pgstack)
set -euo pipefail
ROUNDS=${1:-30}
OCF_DIR=${PGSTACK_OCF_DIR:-/usr/lib/ocf/resource.d/pgstack}
PAF=/usr/lib/ocf/resource.d/heartbeat/pgsqlms
B=/usr/lib/postgresql/15/bin
D=/tmp/pgst-bench-repl
NS=pgst-bench-repl
NODE=pgst-bench-n1
ADDR=10.99.67.1
P1=56490
P2=56491
[ -x "$OCF_DIR/postgresql" ] || { echo "no $OCF_DIR/postgresql" >&2; exit 1; }
[ -x "$PAF" ] || { echo "no $PAF (resource-agents-paf)" >&2; exit 1; }

UNSHARE_PID=
cleanup() {
  set +e
  if [ -n "$UNSHARE_PID" ]; then
    kill "$UNSHARE_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$UNSHARE_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  ip netns del "$NS" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
cleanup
mkdir -p "$D/etc-corosync" "$D/var-lib-pacemaker/cib" "$D/sock"

# The node's PID 1: private corosync and pacemaker directories, the shims under test
# as the pgstack provider, then the daemons (as in tests/common/cluster1.rs).
INIT='set -e
D=$1; OCF=$3
hostname "$2"
mount --make-rprivate /
mkdir -p "$D/var-lib-corosync" "$D/log-pacemaker" "$D/log-corosync" "$D/var-lib-pacemaker/cib"
mkdir -p "$D/var-lib-pacemaker/pengine" "$D/var-lib-pacemaker/blackbox" "$D/var-lib-pacemaker/cores" "$D/var-lib-pacemaker/bundles"
chown -R hacluster:haclient "$D/var-lib-pacemaker" "$D/log-pacemaker"
chmod 0750 "$D/var-lib-pacemaker/cib" "$D/var-lib-pacemaker/pengine"
mount --bind "$D/etc-corosync" /etc/corosync
mount --bind "$D/var-lib-corosync" /var/lib/corosync
mount --bind "$D/var-lib-pacemaker" /var/lib/pacemaker
mount --bind "$D/log-pacemaker" /var/log/pacemaker
mount --bind "$D/log-corosync" /var/log/corosync
mount --bind "$OCF" /usr/lib/ocf/resource.d/pgstack
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/resource-agents /run/postgresql
chown postgres: /run/postgresql
mount -t tmpfs tmpfs /dev/shm
/usr/sbin/corosync -f > "$D/corosync.out" 2>&1 &
i=0; while [ $i -lt 100 ] && ! corosync-cfgtool -s >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
/usr/sbin/pacemakerd > "$D/pacemakerd.out" 2>&1 &
wait'
cat > "$D/etc-corosync/corosync.conf" <<EOF
totem {
 version: 2
 cluster_name: pgstbench
 crypto_cipher: none
 crypto_hash: none
}
nodelist {
 node {
  ring0_addr: $ADDR
  name: $NODE
  nodeid: 1
 }
}
quorum {
 provider: corosync_votequorum
}
logging {
 to_stderr: yes
 to_syslog: no
}
EOF
# Both resources exist (pgsqlms reads its clone's notify meta attribute with
# crm_resource); maintenance mode keeps Pacemaker from acting on them.
clone() { # id provider type
  cat <<EOF
<clone id="$1-clone"><meta_attributes id="$1-clone-meta">
<nvpair id="$1-c1" name="promotable" value="true"/><nvpair id="$1-c2" name="notify" value="true"/>
<nvpair id="$1-c3" name="promoted-max" value="1"/><nvpair id="$1-c4" name="clone-max" value="2"/>
</meta_attributes>
<primitive id="$1" class="ocf" provider="$2" type="$3"><meta_attributes id="$1-meta">
<nvpair id="$1-m1" name="notify" value="true"/></meta_attributes></primitive></clone>
EOF
}
cat > "$D/var-lib-pacemaker/cib/cib.xml" <<EOF
<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
<configuration><crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o1" name="stonith-enabled" value="false"/>
<nvpair id="o2" name="dc-deadtime" value="2s"/>
<nvpair id="o3" name="maintenance-mode" value="true"/>
</cluster_property_set></crm_config><nodes/>
<resources>$(clone pgsqld heartbeat pgsqlms)$(clone pgst pgstack postgresql)</resources>
<constraints/></configuration><status/></cib>
EOF
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$ADDR/32" dev lo
ip netns exec "$NS" unshare --mount --uts --pid --fork --kill-child --mount-proc \
  sh -c "$INIT" sh "$D" "$NODE" "$OCF_DIR" </dev/null >/dev/null 2>&1 &
UNSHARE_PID=$!
PID1=
for _ in $(seq 100); do
  PID1=$(pgrep -P "$UNSHARE_PID" | head -1 || true)
  [ -n "$PID1" ] && break
  sleep 0.1
done
[ -n "$PID1" ] || { echo "the node did not start" >&2; exit 1; }
in_node() { nsenter -t "$PID1" -m -n -u -p -r "$@"; }
as_pg() { in_node runuser -u postgres -- "$@"; }
t0=$(date +%s)
until in_node crm_node --partition 2>/dev/null | grep -qw "$NODE" \
    && in_node cibadmin -Q >/dev/null 2>&1; do
  [ $(( $(date +%s) - t0 )) -lt 60 ] || { echo "the node is not up after 60 s" >&2; exit 1; }
  sleep 0.5
done

# The servers: a primary and a pg_basebackup standby streaming from it. PAF's
# validation wants primary_conninfo with application_name=<node> and
# recovery_target_timeline='latest' in the configuration of both.
mkdir -m 0700 "$D/primary" "$D/standby"
mkdir "$D/log"
chown -R postgres: "$D/sock" "$D/primary" "$D/standby" "$D/log"
chmod 0755 "$D"
as_pg "$B/initdb" -D "$D/primary" -A trust -U postgres --no-sync >/dev/null || exit 1
cat >> "$D/primary/postgresql.conf" <<EOF
port = $P1
listen_addresses = ''
unix_socket_directories = '$D/sock'
primary_conninfo = 'host=$D/sock port=$P1 user=postgres application_name=$NODE'
recovery_target_timeline = 'latest'
EOF
as_pg "$B/pg_ctl" -D "$D/primary" -l "$D/log/primary.log" -w start >/dev/null || exit 1
as_pg "$B/pg_basebackup" -h "$D/sock" -p $P1 -U postgres -D "$D/standby" -X stream --no-sync || exit 1
echo "port = $P2" >> "$D/standby/postgresql.conf"
as_pg touch "$D/standby/standby.signal"
as_pg "$B/pg_ctl" -D "$D/standby" -l "$D/log/standby.log" -w start >/dev/null || exit 1
t0=$(date +%s)
until [ "$(as_pg "$B/psql" -X -h "$D/sock" -p $P1 -U postgres -Atc \
    "select state from pg_stat_replication where application_name = '$NODE'" 2>/dev/null)" = streaming ]; do
  [ $(( $(date +%s) - t0 )) -lt 30 ] || { echo "the standby does not stream" >&2; exit 1; }
  sleep 0.2
done

# The commands, with the environment Pacemaker gives a recurring monitor.
base=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OCF_ROOT=/usr/lib/ocf
  OCF_RA_VERSION_MAJOR=1 OCF_RA_VERSION_MINOR=0 HA_LOGFACILITY=none
  OCF_RESKEY_crm_feature_set=3.16.1 OCF_RESKEY_CRM_meta_timeout=30000
  OCF_RESKEY_CRM_meta_clone_max=2 OCF_RESKEY_CRM_meta_clone_node_max=1
  OCF_RESKEY_CRM_meta_promoted_max=1 OCF_RESKEY_CRM_meta_master_max=1
  OCF_RESKEY_CRM_meta_promoted_node_max=1 OCF_RESKEY_CRM_meta_master_node_max=1
  OCF_RESKEY_CRM_meta_notify=true OCF_RESKEY_CRM_meta_on_node=$NODE)
primary=(OCF_RESKEY_CRM_meta_interval=15000 OCF_RESKEY_CRM_meta_role=Promoted)
standby=(OCF_RESKEY_CRM_meta_interval=16000 OCF_RESKEY_CRM_meta_role=Unpromoted)
paf() { # data port
  echo OCF_RESOURCE_INSTANCE=pgsqld OCF_RESKEY_bindir=$B OCF_RESKEY_pgdata=$D/$1 \
    OCF_RESKEY_pghost=$D/sock OCF_RESKEY_pgport=$2 OCF_RESKEY_system_user=postgres
}
ours() { # data port
  echo OCF_RESOURCE_INSTANCE=pgst OCF_RESKEY_pgdata=$D/$1 OCF_RESKEY_socketdir=$D/sock \
    OCF_RESKEY_pgport=$2 OCF_RESKEY_master_ip=127.0.0.1 OCF_RESKEY_mode=replication
}
q() { printf '%q ' "$@"; }
# shellcheck disable=SC2046
cmds=(
  "pgstack primary|$(q "${base[@]}" "${primary[@]}" $(ours primary $P1) "$OCF_DIR/postgresql" monitor)|8"
  "pgsqlms primary|$(q "${base[@]}" "${primary[@]}" $(paf primary $P1) "$PAF" monitor)|8"
  "pgstack standby|$(q "${base[@]}" "${standby[@]}" $(ours standby $P2) "$OCF_DIR/postgresql" monitor)|0"
  "pgsqlms standby|$(q "${base[@]}" "${standby[@]}" $(paf standby $P2) "$PAF" monitor)|0"
)
for c in "${cmds[@]}"; do
  IFS='|' read -r name cmd want <<<"$c"
  set +e; in_node sh -c "$cmd" >"$D/check.out" 2>&1; rc=$?; set -e
  [ "$rc" = "$want" ] || { echo "$name monitor: exit $rc, expected $want" >&2; cat "$D/check.out" >&2; tail -n 20 "$D"/log/*.log >&2; ls -la "$D/sock" >&2; exit 1; }
done
printf '%s\n' "${cmds[@]}" > "$D/cmds"
cat > "$D/rounds.py" <<'PY'
import statistics, subprocess, sys, time
rounds = int(sys.argv[2])
cmds = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
times = {n: [] for n, _, _ in cmds}
for r in range(rounds + 2):
    k = r % len(cmds)
    for name, cmd, want in cmds[k:] + cmds[:k]:
        t = time.perf_counter()
        p = subprocess.run(["sh", "-c", "exec " + cmd], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        dt = time.perf_counter() - t
        if p.returncode != int(want):
            sys.exit(f"{name}: exit {p.returncode}, expected {want}: {p.stderr.decode()[-2000:]}")
        if r >= 2:  # two warm-up rounds
            times[name].append(dt * 1e3)
print("| monitor of | agent | median [ms] | q1 [ms] | q3 [ms] | min [ms] |")
print("|:---|:---|---:|---:|---:|---:|")
for n, v in times.items():
    q = statistics.quantiles(v, n=4)
    agent, role = n.split()
    print(f"| {role} | {agent} | {statistics.median(v):.1f} | {q[0]:.1f} | {q[2]:.1f} | {min(v):.1f} |")
m = {n: statistics.median(v) for n, v in times.items()}
for role in ("primary", "standby"):
    print(f"\n{role}: pgstack / pgsqlms median = {m['pgstack ' + role] / m['pgsqlms ' + role]:.3f}", end="")
print()
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "pgstack shims: $OCF_DIR ($(head -c 300 "$OCF_DIR/postgresql" | grep -o 'exec [^ ]*' | head -1))"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds of 4, alternating"
in_node python3 "$D/rounds.py" "$D/cmds" "$ROUNDS" || { tail -n 5 "$D"/log/*.log >&2; ls -la "$D/sock" >&2; exit 1; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
