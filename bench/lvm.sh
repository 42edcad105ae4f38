#!/usr/bin/env bash
# Side-by-side timings of ocf:pgstack:lvm and ocf:heartbeat:LVM-activate in the same
# User-Mode-Linux guest (device-mapper exists only there): monitor depth 0 and 10, start,
# stop, medians of RUNS (default 10). Prints a Markdown table (also kept in
# target/test-artifacts/lvm-bench.md). Needs root, user-mode-linux, uml-utilities, lvm2.
#
#   bench/lvm.sh                  the installed agent (/usr/lib/ocf/resource.d/pgstack/lvm)
#   PGSTACK_BIN=... PGSTACK_OCF_DIR=... RUNS=20 bench/lvm.sh
#
# The agent timed is the installed binary (build it with --release); the harness profile
# does not matter. Guests and their files are under /tmp/pgst-lvmb-* and removed at the end (tests/cleanup
# removes leftovers of a killed run).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (UML guests)" >&2; exit 1; }
exec cargo test --locked --test lvm_uml bench_side_by_side -- --ignored --nocapture
