#!/usr/bin/env bash
# Side-by-side timings of ocf:pgstack:filesystem and ocf:heartbeat:Filesystem on the same
# loop-backed XFS (as root): monitor depth 0 and 20, start, stop, and a busy stop with one
# holder (a sleep with its cwd in the mount). Prints a table of medians and ratios.
#
#   bench/filesystem.sh [PGSTACK_AGENT]     (default /usr/lib/ocf/resource.d/pgstack/filesystem)
#   RUNS=20 bench/filesystem.sh             (runs per case; start/stop use RUNS/2, busy stop RUNS/4)
#
# Everything it creates is under /tmp/pgst-fs-bench (removed at exit; tests/cleanup
# removes leftovers of a killed run).
set -euo pipefail
SELF=$(readlink -f "$0")
BASE=/tmp/pgst-fs-bench
DIR=$BASE/db
OPTS=noatime,nodiratime,logbsize=256k,allocsize=1m

# Helpers called by hyperfine between runs (no shell syntax needed in its command lines).
case "${1:-}" in
  _mount)
    grep -q " $DIR " /proc/self/mountinfo || mount -t xfs -o "$OPTS" "$(cat $BASE/dev)" "$DIR"
    exit 0 ;;
  _unmount)
    ! grep -q " $DIR " /proc/self/mountinfo || umount "$DIR"
    exit 0 ;;
  _holder)
    "$SELF" _mount
    cd "$DIR" && setsid sleep 300 </dev/null >/dev/null 2>&1 &
    # Wait until the holder's cwd is in the mount.
    for _ in $(seq 100); do
      pgrep -f '^sleep 300$' >/dev/null && break
      sleep 0.005
    done
    exit 0 ;;
esac

[ "$(id -u)" = 0 ] || { echo "needs root (loop devices, mounts)" >&2; exit 1; }
OURS=${1:-/usr/lib/ocf/resource.d/pgstack/filesystem}
THEIRS=/usr/lib/ocf/resource.d/heartbeat/Filesystem
RUNS=${RUNS:-20}
for f in "$OURS" "$THEIRS"; do [ -x "$f" ] || { echo "missing $f" >&2; exit 1; }; done

cleanup() {
  "$SELF" _unmount 2>/dev/null || umount -l "$DIR" 2>/dev/null || true
  pkill -f '^sleep 300$' 2>/dev/null || true
  [ -f $BASE/dev ] && losetup -d "$(cat $BASE/dev)" 2>/dev/null || true
  rm -rf "$BASE"
}
trap cleanup EXIT
rm -rf "$BASE"; mkdir -p "$DIR" "$BASE/json"
truncate -s 512M $BASE/disk.img
DEV=$(losetup -f --show $BASE/disk.img); echo "$DEV" > $BASE/dev
mkfs.xfs -q -f -d agcount=4 "$DEV"

envs="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench HA_LOGFACILITY=none OCF_RESKEY_device=$DEV OCF_RESKEY_directory=$DIR OCF_RESKEY_fstype=xfs OCF_RESKEY_options=$OPTS"
mon="OCF_RESKEY_CRM_meta_interval=20000"

bench() { # name runs prepare action extra-env
  local name=$1 runs=$2 prep=$3 action=$4 extra=$5
  hyperfine -N --style none --warmup 1 --runs "$runs" --prepare "$SELF $prep" \
    --export-json "$BASE/json/$name.json" \
    -n theirs "$envs $extra $THEIRS $action" \
    -n ours "$envs $extra $OURS $action" >/dev/null
  "$SELF" _unmount
  pkill -f '^sleep 300$' 2>/dev/null || true
}

bench monitor0 "$RUNS" _mount monitor "$mon OCF_CHECK_LEVEL=0"
bench monitor20 "$RUNS" _mount monitor "$mon OCF_CHECK_LEVEL=20"
bench start $((RUNS / 2)) _unmount start ""
bench stop $((RUNS / 2)) _mount stop ""
bench busystop $((RUNS / 4 > 3 ? RUNS / 4 : 3)) _holder stop ""

echo "machine: $(nproc) CPUs, kernel $(uname -r), $(hyperfine --version)"
echo "ours: $OURS"
python3 - "$BASE/json" <<'PY'
import json, sys, os
d = sys.argv[1]
targets = {"monitor0": ("monitor depth 0", 1/10), "monitor20": ("monitor depth 20", 1/5),
           "start": ("start", 1/3), "stop": ("stop", 1/3), "busystop": ("busy stop, 1 holder", None)}
print("| case | heartbeat median | pgstack median | ratio | target | met |")
print("|---|---:|---:|---:|---|---|")
for key, (label, target) in targets.items():
    r = {x["command"]: x for x in json.load(open(os.path.join(d, key + ".json")))["results"]}
    t, o = r["theirs"]["median"] * 1000, r["ours"]["median"] * 1000
    ratio = o / t
    if target is None:
        tgt, met = "< 300 ms", o < 300
    else:
        tgt, met = f"<= 1/{round(1/target)}", ratio <= target
    print(f"| {label} | {t:.1f} ms | {o:.1f} ms | {ratio:.3f} | {tgt} | {'yes' if met else 'NO'} |")
PY
