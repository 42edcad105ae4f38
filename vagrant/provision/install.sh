#!/bin/bash
# Packages and pgstack on a Debian 12 VM of the two-VM lab, before stack.sh: the stack's
# tools, Corosync and Pacemaker (stopped and not started at boot: cluster.sh starts them),
# PostgreSQL 15 without Debian's own cluster running (Pacemaker owns the server), the
# DRBD module loaded, both nodes in /etc/hosts, and pgstack from the project's package.
#
# Interface (environment):
#   INSTALL_HOSTS   "ADDR=NAME ADDR=NAME": lines for /etc/hosts
#   INSTALL_DEB     the package to install (default: the newest
#                   /pgstack/target/debian/pgstack_*.deb, written by `make deb`)
#   INSTALL_SOURCE  the project tree, built with cargo when there is no package and cargo
#                   is on PATH (/pgstack)

set -euo pipefail
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
cd /

SOURCE=${INSTALL_SOURCE:-/pgstack}
say() { printf '== %s\n' "$*"; }
fail() {
    printf 'install.sh: failed: %s\n' "$*" >&2
    exit 1
}

say "packages"
apt-get update -q
apt-get install -y -q --no-install-recommends \
    lvm2 drbd-utils xfsprogs postgresql-15 corosync pacemaker pacemaker-cli-utils \
    resource-agents crmsh libxml2-utils iproute2 iputils-arping psmisc util-linux kmod

say "services Pacemaker owns: stopped, not started at boot"
for s in postgresql drbd corosync pacemaker; do
    if systemctl list-unit-files "$s.service" >/dev/null 2>&1; then
        systemctl disable --now "$s.service" || true
    fi
done
modprobe drbd
printf 'drbd\n' >/etc/modules-load.d/drbd.conf

say "/etc/hosts"
for pair in ${INSTALL_HOSTS:-}; do
    addr=${pair%%=*} name=${pair#*=}
    [[ $addr =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ && $name =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] ||
        fail "INSTALL_HOSTS entry $pair is not ADDR=NAME"
    # The node's own name must not resolve to 127.0.1.1 (Debian's default line).
    sed -i "/^127\.0\.1\.1[[:space:]].*\b$name\b/d" /etc/hosts
    grep -Eq "^${addr//./\\.}[[:space:]]+${name}\$" /etc/hosts || printf '%s\t%s\n' "$addr" "$name" >>/etc/hosts
done

say "pgstack"
deb=${INSTALL_DEB:-}
if [ -z "$deb" ]; then
    deb=$(find "$SOURCE/target/debian" -maxdepth 1 -name 'pgstack_*.deb' 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -n "$deb" ]; then
    apt-get install -y -q "$deb"
elif command -v cargo >/dev/null; then
    (cd "$SOURCE" && cargo build --release --locked) || fail "cargo build in $SOURCE"
    "$SOURCE/target/release/pgstack" install --prefix /usr
else
    fail "no pgstack package in $SOURCE/target/debian: run \`make deb\` on the host first"
fi
/usr/sbin/pgstack --version
