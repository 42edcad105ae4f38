#!/usr/bin/env bash
# Side-by-side benchmark of ocf:pgstack:vip and ocf:heartbeat:IPaddr2 on the same address
# in the same network namespace, in one run. Prints a table of medians and ratios, peak
# RSS, and the delay from the address appearing to the first gratuitous ARP on the wire.
# Needs root, hyperfine, tcpdump, gcc (for the exec floor) and an installed pgstack.
# usage: bench/vip.sh [runs]   (default 30)
set -euo pipefail
RUNS=${1:-30}
NS=pgst-bench-a; PEER=pgst-bench-b
W=$(mktemp -d /tmp/pgst-bench.XXXXXX)
cleanup() {
  pkill -f "arp announce .*--ip 10\.99\.2\.50" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true; ip netns del "$PEER" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
cleanup; W=$(mktemp -d /tmp/pgst-bench.XXXXXX)

ip netns add "$NS"; ip netns add "$PEER"
ip -n "$NS" link set lo up; ip -n "$PEER" link set lo up
ip -n "$NS" link add va type veth peer name vb netns "$PEER"
ip -n "$NS" link set va up; ip -n "$PEER" link set vb up
ip -n "$NS" addr add 10.99.2.10/24 dev va; ip -n "$PEER" addr add 10.99.2.20/24 dev vb

# The exec floor: a static binary that does nothing but exit, directly and through the
# same kind of sh shim the agents are installed as.
printf 'int main(void){return 0;}\n' > "$W/floor.c"
if gcc -static -O2 -o "$W/floor" "$W/floor.c" 2>/dev/null; then :; else gcc -O2 -o "$W/floor" "$W/floor.c"; fi
printf '#!/bin/sh\nexec %s "$@"\n' "$W/floor" > "$W/floor-shim"; chmod +x "$W/floor-shim"

OURS=/usr/lib/ocf/resource.d/pgstack/vip
REF=/usr/lib/ocf/resource.d/heartbeat/IPaddr2
export OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench HA_LOGFACILITY=none HA_RSCTMP="$W/rsctmp"
export OCF_RESKEY_ip=10.99.2.50 OCF_RESKEY_cidr_netmask=24 OCF_RESKEY_nic=va OCF_RESKEY_CRM_meta_interval=10000
mkdir -p "$HA_RSCTMP"
in_ns() { ip netns exec "$NS" "$@"; }
hf() { # name, json, commands... ; runs hyperfine inside the namespace
  local json=$1; shift
  in_ns hyperfine -N -w 3 -r "$RUNS" --export-json "$W/$json.json" "$@" >/dev/null 2>&1
}

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# monitor (address present)
in_ns "$OURS" start >/dev/null 2>&1
hf monitor -n floor "$W/floor" -n floor-shim "$W/floor-shim" \
  -n vip "$OURS monitor" -n vip-direct "/usr/sbin/pgstack agent vip monitor" -n IPaddr2 "$REF monitor"
in_ns "$OURS" stop >/dev/null 2>&1

# start and stop, each prepared by the opposite action; the duplicate-address probe is
# off for the like-for-like row (IPaddr2 does not probe by default), on for the second.
hf start -n vip --prepare "$OURS stop" "env OCF_RESKEY_run_arping=false $OURS start" \
  -n vip-probe --prepare "$OURS stop" "$OURS start" \
  -n IPaddr2 --prepare "$REF stop" "$REF start"
in_ns "$REF" stop >/dev/null 2>&1
hf stop -n vip --prepare "env OCF_RESKEY_run_arping=false $OURS start" "$OURS stop" \
  -n IPaddr2 --prepare "$REF start" "$REF stop"
in_ns "$REF" stop >/dev/null 2>&1; in_ns "$OURS" stop >/dev/null 2>&1

# peak RSS of our actions (KiB)
rss() { in_ns /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
RSS_START=$(OCF_RESKEY_run_arping=true rss "$OURS" start)
RSS_MON=$(rss "$OURS" monitor)
RSS_STOP=$(rss "$OURS" stop)

# first gratuitous ARP after the address appears: ip monitor and tcpdump in the namespace
lat=()
for i in $(seq 1 10); do
  in_ns ip -ts monitor address dev va > "$W/mon.txt" 2>/dev/null & mpid=$!
  in_ns tcpdump -i va -n -tt -l --immediate-mode arp > "$W/cap.txt" 2>"$W/cap.err" & tpid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$W/cap.err" && break; sleep 0.02; done
  OCF_RESKEY_run_arping=false in_ns "$OURS" start >/dev/null 2>&1
  sleep 0.3
  kill "$mpid" "$tpid" 2>/dev/null; wait "$mpid" "$tpid" 2>/dev/null || true
  in_ns "$OURS" stop >/dev/null 2>&1
  lat+=("$(python3 - "$W/mon.txt" "$W/cap.txt" <<'PY'
import sys, datetime
mon = [l for l in open(sys.argv[1]) if "10.99.2.50" in l and "Deleted" not in l]
cap = [l for l in open(sys.argv[2]) if "10.99.2.50" in l]
if not mon or not cap:
    print("nan"); sys.exit()
ts = mon[0].split("]")[0].lstrip("[")
added = datetime.datetime.fromisoformat(ts).timestamp()
first = float(cap[0].split()[0])
print(f"{(first - added) * 1000:.3f}")
PY
)")
done

python3 - "$W" "$RSS_START" "$RSS_MON" "$RSS_STOP" "${lat[@]}" <<'PY'
import json, sys, statistics
w = sys.argv[1]
rss = dict(start=sys.argv[2], monitor=sys.argv[3], stop=sys.argv[4])
lat = [float(x) for x in sys.argv[5:] if x != "nan"]
def med(name):
    d = json.load(open(f"{w}/{name}.json"))["results"]
    return {r["command"]: statistics.median(r["times"]) * 1000 for r in d}
mon, start, stop = med("monitor"), med("start"), med("stop")
print(f"\n| action | IPaddr2 median (ms) | vip median (ms) | vip / IPaddr2 | target |")
print("|---|---|---|---|---|")
print(f"| monitor | {mon['IPaddr2']:.2f} | {mon['vip']:.2f} | {mon['vip']/mon['IPaddr2']:.3f} | <= 0.100 |")
print(f"| start (no probe, as IPaddr2) | {start['IPaddr2']:.2f} | {start['vip']:.2f} | {start['vip']/start['IPaddr2']:.3f} | <= 0.200 |")
print(f"| start (with duplicate probe) | {start['IPaddr2']:.2f} | {start['vip-probe']:.2f} | {start['vip-probe']/start['IPaddr2']:.3f} | (safety default) |")
print(f"| stop | {stop['IPaddr2']:.2f} | {stop['vip']:.2f} | {stop['vip']/stop['IPaddr2']:.3f} | <= 0.200 |")
print(f"\n| exec floor | median (ms) | vip monitor / floor |")
print("|---|---|---|")
print(f"| static binary, direct | {mon['floor']:.3f} | {mon['vip-direct']/mon['floor']:.2f} (binary direct) |")
print(f"| static binary via sh shim | {mon['floor-shim']:.3f} | {mon['vip']/mon['floor-shim']:.2f} (installed shim) |")
print(f"\npeak RSS (KiB): start {rss['start']}, monitor {rss['monitor']}, stop {rss['stop']} (target < 10240)")
if lat:
    print(f"first gratuitous ARP after the address appears (ms, {len(lat)} runs): median {statistics.median(lat):.3f}, max {max(lat):.3f} (target < 5)")
PY
