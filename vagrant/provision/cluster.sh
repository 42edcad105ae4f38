#!/bin/bash
# Corosync and Pacemaker on one node of the two (the book, chapter 10), after stack.sh:
# corosync.conf rendered by `pgstack cib render --format corosync`, one shared key made by
# corosync-keygen on the first node that needs it and handed to the peer through a
# directory both see (the VMs' synced folder, the guests' share), corosync and pacemaker
# started (never enabled at boot: a node that crashed is examined before it rejoins), and
# on the node that comes last the `advanced` template rendered and loaded.
#
# Usage: cluster.sh [--dry-run] [--help]
#   --dry-run   print the commands and the rendered corosync.conf, change nothing
#
# Interface (environment; defaults are the book's lab):
#   CLUSTER_NODE          this node's name; must equal `uname -n` (default: uname -n)
#   CLUSTER_NODE1         first node (pg1), corosync node id 1
#   CLUSTER_NODE2         second node (pg2), corosync node id 2
#   CLUSTER_NODE1_ADDR    ring address of node1 (192.168.56.10)
#   CLUSTER_NODE2_ADDR    ring address of node2 (192.168.56.20)
#   CLUSTER_NAME          corosync cluster name (pgcluster)
#   CLUSTER_KEY_DIR       directory both nodes see, where the key waits for the peer
#                         (required unless /etc/corosync/authkey exists on both nodes); the
#                         node that loads the configuration removes the key from it
#   CLUSTER_LOAD          1: load the configuration (on the last node, when both are up)
#   CLUSTER_TIMEOUT       seconds to wait for both nodes to be members (300)
#   CLUSTER_START         systemctl, direct (start the daemons without an init system, as
#                         in the test guests) or none (the caller starts them); default
#                         systemctl when systemd runs, else direct
#   CLUSTER_NO_FENCING    1: render without stonith devices (stonith-enabled=false,
#                         no-quorum-policy=ignore: the book's settings, unsafe; pgstack warns)
#   CLUSTER_PROVIDER      pgstack or heartbeat agents (pgstack)
#   CLUSTER_VIP           service address (192.168.56.50)
#   CLUSTER_VIP_CIDR      its prefix length (24)
#   CLUSTER_VIP_NIC       its interface (empty: from the routing table)
#   CLUSTER_SETS          more template variables, "KEY=VALUE KEY=VALUE" (e.g. the stack
#                         settings when they differ from the defaults: drbd_resource=r0
#                         volgrpname=VG device=/dev/VG/LV directory=/db pgdata=/db/pgdata)
#   CLUSTER_PGSTACK       the pgstack binary (/usr/sbin/pgstack, else pgstack from PATH)
#   CLUSTER_COROSYNC_DIR  where corosync.conf and authkey go (/etc/corosync)
# Exit codes: 0 done, 1 a step failed, 2 refused (wrong node, bad setting, keys differ).

set -euo pipefail
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
SELF=$(readlink -f -- "$0")
cd /

DRY_RUN=0
for arg in "$@"; do
    case $arg in
        --dry-run) DRY_RUN=1 ;;
        --help | -h)
            # The comment block at the top of this file.
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"
            exit 0
            ;;
        *)
            echo "cluster.sh: unknown argument $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

say() { printf '== %s\n' "$*"; }
refuse() {
    printf 'cluster.sh: refused: %s\n' "$*" >&2
    exit 2
}
fail() {
    printf 'cluster.sh: failed: %s\n' "$*" >&2
    exit 1
}
run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" = 0 ]; then
        "$@" || fail "$* (exit $?)"
    fi
}
word() { # NAME VALUE REGEX
    [[ $2 =~ ^$3$ ]] || refuse "$1=\"$2\" is not valid (expected $3)"
}

NODE1=${CLUSTER_NODE1:-pg1}
NODE2=${CLUSTER_NODE2:-pg2}
NODE1_ADDR=${CLUSTER_NODE1_ADDR:-192.168.56.10}
NODE2_ADDR=${CLUSTER_NODE2_ADDR:-192.168.56.20}
NODE=${CLUSTER_NODE:-$(uname -n)}
NAME=${CLUSTER_NAME:-pgcluster}
KEY_DIR=${CLUSTER_KEY_DIR:-}
LOAD=${CLUSTER_LOAD:-0}
TIMEOUT=${CLUSTER_TIMEOUT:-300}
NO_FENCING=${CLUSTER_NO_FENCING:-0}
PROVIDER=${CLUSTER_PROVIDER:-pgstack}
VIP=${CLUSTER_VIP:-192.168.56.50}
VIP_CIDR=${CLUSTER_VIP_CIDR:-24}
VIP_NIC=${CLUSTER_VIP_NIC:-}
COROSYNC_DIR=${CLUSTER_COROSYNC_DIR:-/etc/corosync}
if [ -n "${CLUSTER_START:-}" ]; then
    START=$CLUSTER_START
elif [ -d /run/systemd/system ]; then
    START=systemctl
else
    START=direct
fi
if [ -n "${CLUSTER_PGSTACK:-}" ]; then
    PGSTACK=$CLUSTER_PGSTACK
elif [ -x /usr/sbin/pgstack ]; then
    PGSTACK=/usr/sbin/pgstack
else
    PGSTACK=$(command -v pgstack || true)
fi
if [ -z "$PGSTACK" ] || [ ! -x "$PGSTACK" ]; then
    refuse "pgstack not found (set CLUSTER_PGSTACK)"
fi

for v in NODE NODE1 NODE2; do
    word "CLUSTER_$v" "${!v}" '[A-Za-z0-9][A-Za-z0-9.-]*'
done
for v in NODE1_ADDR NODE2_ADDR VIP; do
    word "CLUSTER_$v" "${!v}" '([0-9]{1,3}\.){3}[0-9]{1,3}'
done
word CLUSTER_NAME "$NAME" '[A-Za-z0-9_-]+'
word CLUSTER_LOAD "$LOAD" '(0|1)'
word CLUSTER_NO_FENCING "$NO_FENCING" '(0|1)'
word CLUSTER_TIMEOUT "$TIMEOUT" '[0-9]{1,4}'
word CLUSTER_START "$START" '(systemctl|direct|none)'
word CLUSTER_PROVIDER "$PROVIDER" '(pgstack|heartbeat)'
word CLUSTER_VIP_CIDR "$VIP_CIDR" '[0-9]{1,2}'
[ -z "$VIP_NIC" ] || word CLUSTER_VIP_NIC "$VIP_NIC" '[A-Za-z0-9_.:-]+'
[ -z "$KEY_DIR" ] || word CLUSTER_KEY_DIR "$KEY_DIR" '/[A-Za-z0-9_./-]*'
case $NODE in
    "$NODE1") MY_ADDR=$NODE1_ADDR PEER=$NODE2 ;;
    "$NODE2") MY_ADDR=$NODE2_ADDR PEER=$NODE1 ;;
    *) refuse "this node is $NODE, neither $NODE1 nor $NODE2" ;;
esac

# The same variables for every format, so corosync.conf and the CIB agree.
render=("$PGSTACK" cib render --template advanced
    --set "provider=$PROVIDER" --set "cluster_name=$NAME"
    --set "node1=$NODE1" --set "node2=$NODE2"
    --set "node1_addr=$NODE1_ADDR" --set "node2_addr=$NODE2_ADDR"
    --set "corosync_keyfile=$COROSYNC_DIR/authkey"
    --set "vip=$VIP" --set "vip_cidr=$VIP_CIDR")
[ -z "$VIP_NIC" ] || render+=(--set "vip_nic=$VIP_NIC")
for kv in ${CLUSTER_SETS:-}; do
    word CLUSTER_SETS "$kv" '[a-z0-9_]+=[A-Za-z0-9_./:,=@+-]*'
    render+=(--set "$kv")
done
[ "$NO_FENCING" = 1 ] && render+=(--no-fencing)

say "node $NODE (peer $PEER, ring address $MY_ADDR), start: $START, load: $LOAD"
if [ "$DRY_RUN" = 0 ]; then
    [ "$(id -u)" = 0 ] || refuse "run as root"
    [ "$(uname -n)" = "$NODE" ] || refuse "CLUSTER_NODE=$NODE but this machine is $(uname -n)"
    addrs=$(ip -o -4 addr show)
    grep -Fq " $MY_ADDR/" <<<"$addrs" ||
        refuse "$NODE's ring address $MY_ADDR is not configured here"
    for t in corosync corosync-keygen pacemakerd cibadmin crm_node xmllint; do
        command -v "$t" >/dev/null || refuse "$t not found (corosync, pacemaker, libxml2-utils)"
    done
fi

# --- 1. corosync.conf --------------------------------------------------------------------
CONF=$COROSYNC_DIR/corosync.conf
say "1. $CONF"
printf '+ %s --format corosync\n' "${render[*]}"
conf=$("${render[@]}" --format corosync) || fail "${render[*]} --format corosync"
if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s:\n%s\n' "$CONF" "$conf"
elif [ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]; then
    printf '+ write %s\n' "$CONF"
    [ ! -f "$CONF" ] || cp -p -- "$CONF" "$CONF.pgstack-old"
    printf '%s\n' "$conf" >"$CONF.tmp" && mv -f -- "$CONF.tmp" "$CONF"
fi

# --- 2. the shared key ---------------------------------------------------------------------
KEY=$COROSYNC_DIR/authkey
say "2. $KEY"
if [ "$DRY_RUN" = 1 ]; then
    run corosync-keygen -k "$KEY"
    [ -z "$KEY_DIR" ] || run install -m 0600 -- "$KEY" "$KEY_DIR/authkey"
elif [ -n "$KEY_DIR" ] && [ -f "$KEY_DIR/authkey" ]; then
    if [ -f "$KEY" ]; then
        cmp -s -- "$KEY" "$KEY_DIR/authkey" ||
            refuse "$KEY differs from the key in $KEY_DIR made for $PEER: remove one of them"
        say "   $KEY is the shared key already"
    else
        run install -m 0400 -o root -g root -- "$KEY_DIR/authkey" "$KEY"
    fi
else
    if [ -f "$KEY" ]; then
        say "   $KEY exists: kept"
    elif [ "$LOAD" = 1 ] && [ -n "$KEY_DIR" ] && [ "$DRY_RUN" = 0 ]; then
        # The last node joins the key the first one made; a key of its own would split
        # the cluster in two (a one-way shared folder shows this).
        refuse "no key from $PEER in $KEY_DIR: run cluster.sh on $PEER first, through a folder both nodes write"
    else
        run corosync-keygen -k "$KEY"
        run chmod 0400 "$KEY"
    fi
    if [ -n "$KEY_DIR" ]; then
        run mkdir -p -m 0700 -- "$KEY_DIR"
        (umask 077 && cp -- "$KEY" "$KEY_DIR/authkey") || fail "copying $KEY to $KEY_DIR"
        printf '+ cp %s %s/authkey\n' "$KEY" "$KEY_DIR"
    fi
fi

# --- 3. corosync and pacemaker, started (not enabled: no automatic rejoin) -------------------
say "3. corosync and pacemaker ($START)"
case $START in
    systemctl)
        run systemctl disable corosync pacemaker
        run systemctl start corosync
        run systemctl start pacemaker
        ;;
    direct)
        if [ "$DRY_RUN" = 1 ] || ! corosync-cfgtool -s >/dev/null 2>&1; then
            run corosync
        fi
        if [ "$DRY_RUN" = 1 ] || ! crm_node -n >/dev/null 2>&1; then
            printf '+ setsid pacemakerd (in the background)\n'
            [ "$DRY_RUN" = 1 ] || setsid pacemakerd </dev/null >/dev/null 2>&1 &
        fi
        ;;
    none) say "   started by the caller" ;;
esac

if [ "$LOAD" = 0 ]; then
    say "done: $NODE runs corosync and pacemaker; load the configuration on $PEER (CLUSTER_LOAD=1)"
    exit 0
fi

# --- 4. both nodes members, then the advanced template --------------------------------------
say "4. wait (at most ${TIMEOUT}s) for $NODE1 and $NODE2, then load the advanced template"
if [ "$DRY_RUN" = 0 ]; then
    end=$((SECONDS + TIMEOUT))
    while :; do
        members=$(crm_node -l 2>/dev/null || true)
        if grep -Eq "^[0-9]+ $NODE1 member" <<<"$members" &&
            grep -Eq "^[0-9]+ $NODE2 member" <<<"$members" &&
            cibadmin -Q -o nodes >/dev/null 2>&1; then
            break
        fi
        [ $SECONDS -lt "$end" ] || fail "$NODE1 and $NODE2 not both members within ${TIMEOUT}s: ${members:-no answer}"
        sleep 1
    done
fi
if [ "$DRY_RUN" = 0 ] && cibadmin -Q -o resources 2>/dev/null | grep -q 'id="PGServer"'; then
    say "   the CIB holds PGServer already: not replaced"
else
    work=$(mktemp -d /tmp/pgstack-cluster.XXXXXX)
    trap 'rm -rf -- "$work"' EXIT
    run "${render[@]}" --format xml --out "$work/cib.xml"
    if [ "$DRY_RUN" = 0 ]; then
        run "$PGSTACK" cib verify "$work/cib.xml"
        xmllint --xpath //configuration "$work/cib.xml" >"$work/configuration.xml" ||
            fail "xmllint --xpath //configuration $work/cib.xml"
    fi
    run cibadmin --replace --scope configuration --xml-file "$work/configuration.xml"
fi
if [ -n "$KEY_DIR" ] && [ "$DRY_RUN" = 0 ]; then
    # Both nodes hold the key now: it does not stay in a folder shared with the host.
    rm -f -- "$KEY_DIR/authkey"
fi
say "done: the advanced stack is configured; watch it with crm_mon"
