#!/bin/bash
# The book's advanced storage stack on one node (chapter 9):
#   raw disk -> lower VG -> LV -> DRBD -> upper VG (5% of its extents free for snapshots)
#   -> LV -> XFS (the book's agcount rule and mount options) -> PGDATA
# Run it on both nodes; the first node also makes DRBD primary, the upper VG, the file
# system and the database, then hands everything over (unmounted, VG inactive, DRBD
# secondary but connected) so that Pacemaker starts it (provision/cluster.sh).
#
# Usage: stack.sh [--dry-run] [--force-disk] [--help]
#   --dry-run     print the commands in order and change nothing (no device is read;
#                 a fresh disk is assumed); the DRBD resource file is rendered and shown
#   --force-disk  accept a lower disk that already carries a partition table or signature
#                 (it is wiped: every byte on it is lost)
#
# Interface (environment; defaults are the book's lab):
#   STACK_NODE            this node's name; must equal `uname -n` (default: uname -n)
#   STACK_NODE1           first node, DRBD's first primary (pg1)
#   STACK_NODE2           second node (pg2)
#   STACK_NODE1_ADDR      IPv4 address of node1 for DRBD and corosync (192.168.56.10)
#   STACK_NODE2_ADDR      IPv4 address of node2 (192.168.56.20)
#   STACK_FIRST           yes: this node makes DRBD primary, the upper VG, the file system
#                         and runs initdb; no: only its own lower layers (default: yes on
#                         STACK_NODE1, no elsewhere)
#   STACK_DISK            the raw lower disk, e.g. /dev/sdb (required; resolved once with
#                         readlink -f, that name is used everywhere after)
#   STACK_DISK_FORCE      1: as --force-disk
#   STACK_LOWER_VG        volume group on the raw disk (VG_DRBD)
#   STACK_LOWER_LV        its logical volume, DRBD's backing device (LV_DATA)
#   STACK_LOWER_SIZE      size of that LV: lvcreate -l 100%VG, or e.g. 400M for -L (100%VG)
#   STACK_UPPER_VG        volume group on /dev/drbd<minor> (VG_POSTGRES)
#   STACK_UPPER_LV        its logical volume, the file system (LV_DATA)
#   STACK_UPPER_FREE_PCT  percent of the upper VG kept free for snapshots (5)
#   STACK_DRBD_RESOURCE   DRBD resource name, /etc/drbd.d/<name>.res (pg)
#   STACK_DRBD_MINOR      /dev/drbd<minor> (0)
#   STACK_DRBD_PORT       replication port (7788)
#   STACK_DRBD_VERSION    8.4 or 9: syntax of the resource file (8.4)
#   STACK_DRBD_DIR        where the resource file goes (/etc/drbd.d)
#   STACK_PROVIDER        pgstack or heartbeat: whose DRBD fence handlers (pgstack); with
#                         heartbeat, lvm.conf also gets the activation/volume_list that
#                         ocf:heartbeat:LVM-activate's tagging mode requires (the lower VG
#                         only: the upper VG is then activated only by that agent's tag)
#   STACK_NO_FENCING      1: render without fencing handlers (pgstack cib render --no-fencing)
#   STACK_VIP             service address, only checked here (192.168.56.50)
#   STACK_MOUNT           mount point of the file system (/db)
#   STACK_PGDATA          data directory on it (/db/pgdata)
#   STACK_PG_BINDIR       directory of initdb/pg_ctl (/usr/lib/postgresql/15/bin)
#   STACK_PG_USER         owner of the data directory (postgres)
#   STACK_PG_HBA_NET      if set (e.g. 192.168.56.0/24): a scram-sha-256 host line for it and
#                         listen_addresses='*'
#   STACK_PGSTACK         the pgstack binary (/usr/sbin/pgstack, else pgstack from PATH);
#                         with STACK_PROVIDER=pgstack DRBD runs it as its fence handlers
#   STACK_LVM_LOCAL       LVM's local configuration file (/etc/lvm/lvmlocal.conf)
#   STACK_INITRAMFS       1: update-initramfs -u after the LVM settings (1 if the command
#                         exists and udev runs; 0 in guests without an initramfs)
#   STACK_HANDOVER        1: leave the first node's stack stopped for Pacemaker (1)
#   STACK_XFS_TEST_SIZE   1: the upper LV is under 300 MB (test guests): mkfs.xfs with
#                         xfsprogs' test variables and agcount=4 instead of the book's
#                         count (`pgstack xfs format`, which needs 300 MB or more)
#   STACK_SYNC_WAIT       seconds to wait for DRBD to connect before making the upper
#                         layers (0: do not wait; the book's first node comes up alone)
# Exit codes: 0 done (or nothing to do), 1 a step failed, 2 refused (wrong node, foreign
# disk, bad setting): nothing was changed by the refused step.
#
# Only the resource file is written in /etc/drbd.d: DRBD's global and common options
# (resync rate, connect-int) stay the machine's, in global_common.conf. Run it on the first
# node, then on the second (the first does not wait for its peer); the resync starts when
# the second comes up. In the test guests (tests/vagrant.rs), for instance:
#   STACK_NODE1=n1 STACK_NODE2=n2 STACK_NODE1_ADDR=10.99.0.1 STACK_NODE2_ADDR=10.99.0.2
#   STACK_DISK=/dev/ubdb STACK_XFS_TEST_SIZE=1 STACK_INITRAMFS=0 STACK_PGSTACK=$P/sbin/pgstack

set -euo pipefail
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
SELF=$(readlink -f -- "$0")
# initdb runs as the database user, who may not be able to enter the caller's directory.
cd /

DRY_RUN=0
FORCE_DISK=${STACK_DISK_FORCE:-0}
for arg in "$@"; do
    case $arg in
        --dry-run) DRY_RUN=1 ;;
        --force-disk) FORCE_DISK=1 ;;
        --help | -h)
            # The comment block at the top of this file.
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"
            exit 0
            ;;
        *)
            echo "stack.sh: unknown argument $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

say() { printf '== %s\n' "$*"; }
refuse() {
    printf 'stack.sh: refused: %s\n' "$*" >&2
    exit 2
}
fail() {
    printf 'stack.sh: failed: %s\n' "$*" >&2
    exit 1
}
# Runs a command that changes the system (printed first; only printed with --dry-run).
run() {
    printf '+ %s\n' "$*"
    if [ "$DRY_RUN" = 0 ]; then
        "$@" || fail "$* (exit $?)"
    fi
}

# --- settings -------------------------------------------------------------------------
NODE1=${STACK_NODE1:-pg1}
NODE2=${STACK_NODE2:-pg2}
NODE1_ADDR=${STACK_NODE1_ADDR:-192.168.56.10}
NODE2_ADDR=${STACK_NODE2_ADDR:-192.168.56.20}
NODE=${STACK_NODE:-$(uname -n)}
LOWER_VG=${STACK_LOWER_VG:-VG_DRBD}
LOWER_LV=${STACK_LOWER_LV:-LV_DATA}
LOWER_SIZE=${STACK_LOWER_SIZE:-100%VG}
UPPER_VG=${STACK_UPPER_VG:-VG_POSTGRES}
UPPER_LV=${STACK_UPPER_LV:-LV_DATA}
FREE_PCT=${STACK_UPPER_FREE_PCT:-5}
RES=${STACK_DRBD_RESOURCE:-pg}
MINOR=${STACK_DRBD_MINOR:-0}
PORT=${STACK_DRBD_PORT:-7788}
DRBD_VERSION=${STACK_DRBD_VERSION:-8.4}
DRBD_DIR=${STACK_DRBD_DIR:-/etc/drbd.d}
PROVIDER=${STACK_PROVIDER:-pgstack}
NO_FENCING=${STACK_NO_FENCING:-0}
VIP=${STACK_VIP:-192.168.56.50}
MOUNT=${STACK_MOUNT:-/db}
PGDATA=${STACK_PGDATA:-/db/pgdata}
PG_BINDIR=${STACK_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_USER=${STACK_PG_USER:-postgres}
PG_HBA_NET=${STACK_PG_HBA_NET:-}
LVM_LOCAL=${STACK_LVM_LOCAL:-/etc/lvm/lvmlocal.conf}
HANDOVER=${STACK_HANDOVER:-1}
SYNC_WAIT=${STACK_SYNC_WAIT:-0}
XFS_TEST_SIZE=${STACK_XFS_TEST_SIZE:-0}
if [ -n "${STACK_PGSTACK:-}" ]; then
    PGSTACK=$STACK_PGSTACK
elif [ -x /usr/sbin/pgstack ]; then
    PGSTACK=/usr/sbin/pgstack
else
    PGSTACK=$(command -v pgstack || true)
fi
if [ -z "$PGSTACK" ] || [ ! -x "$PGSTACK" ]; then
    refuse "pgstack not found (set STACK_PGSTACK)"
fi
# DRBD runs this path as its fence handlers: absolute, resolved once.
PGSTACK=$(readlink -f -- "$PGSTACK")

# Every name ends up in a command line or a regular expression: only plain words.
word() { # NAME VALUE REGEX
    [[ $2 =~ ^$3$ ]] || refuse "$1=\"$2\" is not valid (expected $3)"
}
word STACK_NODE "$NODE" '[A-Za-z0-9][A-Za-z0-9.-]*'
word STACK_NODE1 "$NODE1" '[A-Za-z0-9][A-Za-z0-9.-]*'
word STACK_NODE2 "$NODE2" '[A-Za-z0-9][A-Za-z0-9.-]*'
for v in NODE1_ADDR NODE2_ADDR VIP; do
    word "STACK_$v" "${!v}" '([0-9]{1,3}\.){3}[0-9]{1,3}'
done
for v in LOWER_VG LOWER_LV UPPER_VG UPPER_LV; do
    word "STACK_$v" "${!v}" '[A-Za-z0-9_]+'
done
word STACK_LOWER_SIZE "$LOWER_SIZE" '([0-9]+%(VG|FREE|PVS))|([0-9]+[KMGTkmgt])'
word STACK_UPPER_FREE_PCT "$FREE_PCT" '([1-9]|[1-4][0-9])'
word STACK_DRBD_RESOURCE "$RES" '[A-Za-z0-9_][A-Za-z0-9_.-]*'
word STACK_DRBD_MINOR "$MINOR" '[0-9]{1,5}'
word STACK_DRBD_PORT "$PORT" '[0-9]{1,5}'
word STACK_DRBD_VERSION "$DRBD_VERSION" '(8\.4|9)'
word STACK_PROVIDER "$PROVIDER" '(pgstack|heartbeat)'
for v in NO_FENCING HANDOVER XFS_TEST_SIZE FORCE_DISK; do
    word "STACK_$v" "${!v}" '(0|1)'
done
word STACK_SYNC_WAIT "$SYNC_WAIT" '[0-9]{1,4}'
word STACK_MOUNT "$MOUNT" '/[A-Za-z0-9_./-]*'
word STACK_PGDATA "$PGDATA" '/[A-Za-z0-9_./-]*'
[ "$NODE1" != "$NODE2" ] || refuse "STACK_NODE1 and STACK_NODE2 are both $NODE1"
case $PGDATA in "$MOUNT"/?*) ;; *) refuse "STACK_PGDATA=$PGDATA is not below STACK_MOUNT=$MOUNT" ;; esac

case $NODE in
    "$NODE1") MY_ADDR=$NODE1_ADDR PEER=$NODE2 ;;
    "$NODE2") MY_ADDR=$NODE2_ADDR PEER=$NODE1 ;;
    *) refuse "this node is $NODE, neither $NODE1 nor $NODE2" ;;
esac
if [ -z "${STACK_FIRST:-}" ]; then
    if [ "$NODE" = "$NODE1" ]; then FIRST=yes; else FIRST=no; fi
else
    FIRST=$STACK_FIRST
fi
word STACK_FIRST "$FIRST" '(yes|no)'

[ -n "${STACK_DISK:-}" ] || refuse "STACK_DISK (the raw lower disk, e.g. /dev/sdb) is not set"
word STACK_DISK "$STACK_DISK" '/dev/[A-Za-z0-9_./:-]+'
if [ "$DRY_RUN" = 1 ]; then
    DISK=$STACK_DISK
else
    DISK=$(readlink -f -- "$STACK_DISK")
fi
word "STACK_DISK (resolved)" "$DISK" '/dev/[A-Za-z0-9_/-]+'

LOWER_DEV=/dev/$LOWER_VG/$LOWER_LV
DRBD_DEV=/dev/drbd$MINOR
UPPER_DEV=/dev/$UPPER_VG/$UPPER_LV
DISK_RE=${DISK//./\\.}

pv_vg() { pvs --noheadings -o vg_name -- "$1" 2>/dev/null | tr -d ' '; }

# --- the node and the disk are positively identified before anything changes -------------
say "node $NODE (peer $PEER, address $MY_ADDR), first node: $FIRST, disk $DISK"
if [ "$DRY_RUN" = 0 ]; then
    [ "$(id -u)" = 0 ] || refuse "run as root"
    [ "$(uname -n)" = "$NODE" ] || refuse "STACK_NODE=$NODE but this machine is $(uname -n)"
    addrs=$(ip -o -4 addr show)
    grep -Fq " $MY_ADDR/" <<<"$addrs" ||
        refuse "$NODE's address $MY_ADDR is not configured here: wrong node or network not up"
    [ -b "$DISK" ] || refuse "$DISK is not a block device"
    [ "$(lsblk -dno TYPE "$DISK")" = disk ] || refuse "$DISK is not a whole disk ($(lsblk -dno TYPE "$DISK"))"
    ! findmnt -rn -S "$DISK" >/dev/null || refuse "$DISK is mounted"
    parts=$(lsblk -nro NAME,TYPE "$DISK" | awk '$2 == "part" { print $1 }' | tr '\n' ' ')
    [ -z "$parts" ] || [ "$FORCE_DISK" = 1 ] ||
        refuse "$DISK has partitions ($parts); --force-disk wipes its partition table"
    for t in initdb pg_ctl; do
        [ -x "$PG_BINDIR/$t" ] || refuse "$PG_BINDIR/$t not found (STACK_PG_BINDIR)"
    done
    # A PV of this stack's lower VG is ours (a second run); any other content is not.
    if pvs -- "$DISK" >/dev/null 2>&1; then
        vg=$(pv_vg "$DISK")
        [ -z "$vg" ] || [ "$vg" = "$LOWER_VG" ] || refuse "$DISK is a PV of another volume group, $vg"
    else
        sigs=$(wipefs -n -p -- "$DISK" | grep -v '^#' || true)
        [ -z "$sigs" ] || [ "$FORCE_DISK" = 1 ] ||
            refuse "$DISK carries signatures (wipefs: $(echo "$sigs" | cut -d, -f4 | tr '\n' ' ')); --force-disk wipes them"
    fi
    command -v drbdadm >/dev/null || refuse "drbdadm not found (drbd-utils)"
    command -v mkfs.xfs >/dev/null || refuse "mkfs.xfs not found (xfsprogs)"
fi

# --- 1. lvm.conf: only the lower disk and DRBD devices are scanned -----------------------
# The DRBD backing LV carries the upper PV too (DRBD's data starts at its first byte): if
# LVM scanned it, the upper VG would be seen twice. Reject it first, by every name it has,
# accept the lower disk and the DRBD devices, reject the rest. No device cache (a stale
# cache would name the backing LV). lvmetad, which the book turns off, no longer exists.
say "1. LVM device filter in $LVM_LOCAL"
FILTER="\"r|^/dev/$LOWER_VG/$LOWER_LV\$|\", \"r|^/dev/mapper/${LOWER_VG}-${LOWER_LV}\$|\", \"a|^$DISK_RE\$|\", \"a|^/dev/drbd[0-9]+\$|\", \"r|.*|\""
LVM_TEXT="# Written by pgstack's vagrant/provision/stack.sh: the advanced stack's device filter.
devices {
    filter = [ $FILTER ]
    global_filter = [ $FILTER ]
    write_cache_state = 0
    use_devicesfile = 0
}
"
# LVM-activate (vg_access_mode=tagging) refuses to run without a volume_list, and the
# list must not name the upper VG: only the agent activates it, with its own tag. This
# script's own activations of the upper VG name it explicitly (UPPER_ACTIVATION).
UPPER_ACTIVATION=()
if [ "$PROVIDER" = heartbeat ]; then
    LVM_TEXT+="activation {
    volume_list = [ \"$LOWER_VG\" ]
}
"
    UPPER_ACTIVATION=(--config "activation { volume_list = [ \"$UPPER_VG\" ] }")
fi
if [ "$DRY_RUN" = 1 ] || [ ! -f "$LVM_LOCAL" ] || [ "$(cat "$LVM_LOCAL")" != "${LVM_TEXT%$'\n'}" ]; then
    printf '+ write %s:\n%s' "$LVM_LOCAL" "$LVM_TEXT"
    if [ "$DRY_RUN" = 0 ]; then
        [ ! -f "$LVM_LOCAL" ] || cp -p -- "$LVM_LOCAL" "$LVM_LOCAL.pgstack-old"
        printf '%s' "$LVM_TEXT" >"$LVM_LOCAL.tmp" && mv -f -- "$LVM_LOCAL.tmp" "$LVM_LOCAL"
    fi
fi
run rm -f /etc/lvm/cache/.cache
run lvmconfig --validate
if [ "$DRY_RUN" = 0 ]; then
    got=$(lvmconfig devices/filter)
    case $got in
        "filter=[\"r|^/dev/$LOWER_VG/"*) ;;
        *) fail "lvmconfig devices/filter is $got: $LVM_LOCAL is not in effect" ;;
    esac
fi
RULES=/etc/udev/rules.d/20-postgresql.rules
RULES_TEXT='# Written by pgstack: read-ahead of the data devices (the book, chapter 9).
ACTION=="add|change", KERNEL=="sd[a-z]|vd[a-z]|drbd[0-9]*", ATTR{bdi/read_ahead_kb}="4096"'
if [ -d /etc/udev/rules.d ] && { [ "$DRY_RUN" = 1 ] || [ "$(cat "$RULES" 2>/dev/null)" != "$RULES_TEXT" ]; }; then
    printf '+ write %s\n' "$RULES"
    [ "$DRY_RUN" = 1 ] || printf '%s\n' "$RULES_TEXT" >"$RULES"
fi
if [ -z "${STACK_INITRAMFS:-}" ]; then
    if command -v update-initramfs >/dev/null && [ -e /run/udev/control ]; then STACK_INITRAMFS=1; else STACK_INITRAMFS=0; fi
fi
[ "$STACK_INITRAMFS" = 0 ] || run update-initramfs -u

# --- 2. lower LVM on the raw disk ------------------------------------------------------
say "2. lower VG $LOWER_VG on $DISK, LV $LOWER_DEV ($LOWER_SIZE)"
if [ "$DRY_RUN" = 1 ]; then
    run pvcreate "$DISK"
    run vgcreate "$LOWER_VG" "$DISK"
else
    if pvs -- "$DISK" >/dev/null 2>&1; then
        vg=$(pv_vg "$DISK")
        case $vg in
            "$LOWER_VG") ;;
            "") run vgcreate "$LOWER_VG" "$DISK" ;;
            *) refuse "$DISK is a PV of another volume group, $vg" ;;
        esac
    else
        # Signatures are refused above unless --force-disk.
        [ -z "$sigs" ] || run wipefs -a -- "$DISK"
        vgs -- "$LOWER_VG" >/dev/null 2>&1 && refuse "volume group $LOWER_VG exists on another device"
        run pvcreate "$DISK"
        run vgcreate "$LOWER_VG" "$DISK"
    fi
fi
case $LOWER_SIZE in *%*) SIZE_OPT=-l ;; *) SIZE_OPT=-L ;; esac
if [ "$DRY_RUN" = 1 ] || ! lvs -- "$LOWER_VG/$LOWER_LV" >/dev/null 2>&1; then
    run lvcreate -y -n "$LOWER_LV" "$SIZE_OPT" "$LOWER_SIZE" "$LOWER_VG"
fi
[ "$DRY_RUN" = 1 ] || [ -b "$LOWER_DEV" ] || run lvchange -a y "$LOWER_VG/$LOWER_LV"

# --- 3. DRBD on the lower LV ---------------------------------------------------------------
RES_FILE=$DRBD_DIR/$RES.res
say "3. DRBD resource $RES ($DRBD_DEV on $LOWER_DEV, port $PORT) in $RES_FILE"
render=("$PGSTACK" cib render --template advanced --format drbd
    --set "provider=$PROVIDER" --set "drbd_version=$DRBD_VERSION"
    --set "node1=$NODE1" --set "node2=$NODE2"
    --set "node1_addr=$NODE1_ADDR" --set "node2_addr=$NODE2_ADDR"
    --set "drbd_resource=$RES" --set "drbd_minor=$MINOR" --set "drbd_port=$PORT"
    --set "drbd_disk=$LOWER_DEV" --set "pgstack_bin=$PGSTACK" --set "volgrpname=$UPPER_VG" --set "device=$UPPER_DEV"
    --set "directory=$MOUNT" --set "pgdata=$PGDATA" --set "vip=$VIP")
[ "$NO_FENCING" = 1 ] && render+=(--no-fencing)
printf '+ %s\n' "${render[*]}"
res_text=$("${render[@]}") || fail "${render[*]}"
if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s:\n%s\n' "$RES_FILE" "$res_text"
elif [ "$(cat "$RES_FILE" 2>/dev/null)" != "$res_text" ]; then
    printf '+ write %s\n' "$RES_FILE"
    mkdir -p -- "$DRBD_DIR"
    printf '%s\n' "$res_text" >"$RES_FILE.tmp" && mv -f -- "$RES_FILE.tmp" "$RES_FILE"
fi
[ "$DRY_RUN" = 1 ] || drbdadm dump "$RES" >/dev/null || fail "drbdadm dump $RES: the rendered $RES_FILE is not accepted"
cstate() { drbdadm cstate "$RES" 2>/dev/null || true; }
if [ "$DRY_RUN" = 1 ]; then
    run drbdadm -- --force create-md "$RES"
    run drbdadm up "$RES"
else
    case $(cstate) in
        "" | *Unconfigured*)
            if drbdadm dump-md "$RES" >/dev/null 2>&1; then
                say "   $RES has DRBD metadata already"
            else
                other=$(wipefs -n -p -- "$LOWER_DEV" | grep -v '^#' || true)
                [ -z "$other" ] || refuse "$LOWER_DEV carries signatures but no DRBD metadata: $other"
                run drbdadm -- --force create-md "$RES"
            fi
            run drbdadm up "$RES"
            ;;
        *) say "   $RES is up already ($(cstate))" ;;
    esac
fi

if [ "$FIRST" = no ]; then
    run mkdir -p -- "$MOUNT"
    say "done: $NODE is DRBD secondary of $RES; the upper layers replicate from $PEER"
    exit 0
fi

# --- 4. first node: DRBD primary ---------------------------------------------------------
say "4. $NODE becomes DRBD primary of $RES"
if [ "$SYNC_WAIT" != 0 ] && [ "$DRY_RUN" = 0 ]; then
    end=$((SECONDS + SYNC_WAIT))
    until [ "$(cstate)" = Connected ] || [ "$(cstate)" = SyncSource ] || [ "$(cstate)" = SyncTarget ]; do
        [ $SECONDS -lt "$end" ] || fail "$RES not connected to $PEER within ${SYNC_WAIT}s ($(cstate))"
        sleep 0.5
    done
fi
if [ "$DRY_RUN" = 1 ]; then
    run drbdadm primary --force "$RES"
else
    role=$(drbdadm role "$RES")
    dstate=$(drbdadm dstate "$RES")
    case $role in
        Primary/*) say "   already primary" ;;
        */Primary) refuse "$PEER is primary of $RES: build the upper layers there" ;;
        *)
            case $dstate in
                UpToDate/*) run drbdadm primary "$RES" ;;
                Inconsistent/Inconsistent | Inconsistent/DUnknown)
                    # A fresh resource on both sides: this node's data is declared the good
                    # one and the peer syncs from it (the book's invalidate-remote).
                    run drbdadm primary --force "$RES"
                    ;;
                *) refuse "$RES disk states $dstate: not forcing this node primary" ;;
            esac
            ;;
    esac
fi

# --- 5. upper LVM on the DRBD device, 5% kept free ----------------------------------------
KEEP=$((100 - FREE_PCT))
say "5. upper VG $UPPER_VG on $DRBD_DEV, LV $UPPER_DEV at ${KEEP}%VG (${FREE_PCT}% free for snapshots)"
if [ "$DRY_RUN" = 1 ]; then
    run pvcreate "$DRBD_DEV"
    run vgcreate --setautoactivation n "$UPPER_VG" "$DRBD_DEV"
    run lvcreate -y -n "$UPPER_LV" -l "${KEEP}%VG" "$UPPER_VG" "${UPPER_ACTIVATION[@]}"
else
    if pvs -- "$DRBD_DEV" >/dev/null 2>&1; then
        vg=$(pv_vg "$DRBD_DEV")
        case $vg in
            "$UPPER_VG") ;;
            "") run vgcreate --setautoactivation n "$UPPER_VG" "$DRBD_DEV" ;;
            *) refuse "$DRBD_DEV is a PV of another volume group, $vg" ;;
        esac
    else
        other=$(wipefs -n -p -- "$DRBD_DEV" | grep -v '^#' || true)
        [ -z "$other" ] || refuse "$DRBD_DEV carries signatures but is no PV: $other"
        run pvcreate "$DRBD_DEV"
        run vgcreate --setautoactivation n "$UPPER_VG" "$DRBD_DEV"
    fi
    lvs -- "$UPPER_VG/$UPPER_LV" >/dev/null 2>&1 ||
        run lvcreate -y -n "$UPPER_LV" -l "${KEEP}%VG" "$UPPER_VG" "${UPPER_ACTIVATION[@]}"
    # No process substitution: a guest without /dev/fd runs this too.
    read -r total free <<<"$(vgs --noheadings -o vg_extent_count,vg_free_count -- "$UPPER_VG")"
    say "   $UPPER_VG: $free of $total extents free"
    [ $((free * 100)) -ge $((total * FREE_PCT)) ] ||
        fail "$UPPER_VG keeps $free of $total extents free, under ${FREE_PCT}%"
fi
run lvchange -a y "$UPPER_VG/$UPPER_LV" "${UPPER_ACTIVATION[@]}"

# --- 6. XFS: the book's agcount rule, then its mount options -------------------------------
say "6. XFS on $UPPER_DEV, mounted on $MOUNT"
fstype() { blkid -p -o value -s TYPE -- "$1" 2>/dev/null || true; }
mkfs_xfs() {
    if [ "$XFS_TEST_SIZE" = 1 ]; then
        # xfsprogs refuses file systems under 300 MB outside its own test suite; the
        # book's count needs a real size, so a test-size volume gets 4 groups.
        run env TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -d agcount=4 "$UPPER_DEV"
    else
        run "$PGSTACK" xfs format "$UPPER_DEV"
    fi
}
if [ "$DRY_RUN" = 1 ]; then
    mkfs_xfs
else
    case $(fstype "$UPPER_DEV") in
        xfs) say "   $UPPER_DEV has an XFS file system already" ;;
        "") mkfs_xfs ;;
        *) refuse "$UPPER_DEV carries $(fstype "$UPPER_DEV"), not XFS" ;;
    esac
fi
OPTIONS=$("$PGSTACK" xfs mount-options)
run mkdir -p -- "$MOUNT"
if [ "$DRY_RUN" = 0 ] && mountpoint -q -- "$MOUNT"; then
    [ "$(mountpoint -d -- "$MOUNT")" = "$(mountpoint -x -- "$UPPER_DEV")" ] ||
        refuse "$MOUNT is a mount point of another device"
    say "   $UPPER_DEV is mounted on $MOUNT already"
else
    run mount -t xfs -o "$OPTIONS" "$UPPER_DEV" "$MOUNT"
fi

# --- 7. PGDATA on it ------------------------------------------------------------------------
say "7. PostgreSQL data directory $PGDATA (initdb as $PG_USER)"
if [ "$DRY_RUN" = 0 ] && [ -f "$PGDATA/PG_VERSION" ]; then
    say "   $PGDATA holds a database already (PostgreSQL $(cat "$PGDATA/PG_VERSION"))"
else
    run install -d -o "$PG_USER" -g "$PG_USER" -m 0700 -- "$PGDATA"
    run runuser -u "$PG_USER" -- "$PG_BINDIR/initdb" -D "$PGDATA" --auth-local=peer --auth-host=scram-sha-256
    if [ -n "$PG_HBA_NET" ]; then
        word STACK_PG_HBA_NET "$PG_HBA_NET" '([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}'
        printf '+ append listen_addresses and a host line for %s to %s\n' "$PG_HBA_NET" "$PGDATA"
        if [ "$DRY_RUN" = 0 ]; then
            printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
            printf 'host all all %s scram-sha-256\n' "$PG_HBA_NET" >>"$PGDATA/pg_hba.conf"
        fi
    fi
fi

# --- 8. hand over to Pacemaker: everything stopped, DRBD connected ---------------------------
if [ "$HANDOVER" = 1 ]; then
    say "8. hand over: $MOUNT unmounted, $UPPER_VG inactive, $RES secondary"
    run umount "$MOUNT"
    run vgchange -a n "$UPPER_VG"
    run drbdadm secondary "$RES"
fi
say "done: the stack of $RES is built on $NODE"
