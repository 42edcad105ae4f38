# The two commands of the README:
#   make install   Debian packages, release build, install of the binary, agent links, man pages
#   make test      test packages, build, install, every test (root: namespaces, loop devices)
#   make lab       the main job live: a 2-node Pacemaker cluster in namespaces running
#                  PostgreSQL as a promotable clone with synchronous streaming replication
#                  behind the VIP, a writer, one switchover, one crash failover, the
#                  crashed node back as a standby, the lost-row check, down
#                  (KEEP=1 leaves the lab running)
PREFIX ?= /usr
CARGO ?= cargo
DEB_ARCH := $(shell dpkg --print-architecture)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build install uninstall test test-unit test-root bench clean-test-leftovers deb test-install lab lab-run

all: build

build:
	$(CARGO) build --release --locked

install:
	.ci/apt-ensure .ci/packages-runtime
	$(MAKE) build
	./target/release/pgstack install --prefix $(PREFIX)

uninstall:
	./target/release/pgstack install --uninstall --prefix $(PREFIX)

# The Debian package, from the release build's `pgstack install --destdir` tree.
deb:
	.ci/apt-ensure .ci/packages-deb
	$(MAKE) build
	packaging/build-deb target/release/pgstack target/debian

# What the suite runs against: the Debian package (dpkg owns every file) when installing
# into /usr, a source install into another PREFIX. No shell line here calls $(MAKE), so
# `make -n` only prints the dpkg command.
ifeq ($(PREFIX),/usr)
test-install: deb
	dpkg -i --force-confold target/debian/pgstack_$(VERSION)_$(DEB_ARCH).deb
else
test-install: build
	./target/release/pgstack install --prefix $(PREFIX)
endif

test:
	.ci/apt-ensure .ci/packages-runtime .ci/packages-test .ci/packages-deb .ci/packages-lab
	$(MAKE) build
	$(MAKE) test-install
	tests/cleanup
	# A PID namespace of its own, with tini as its init: orphans are reaped (a killed
	# server must not linger as a zombie a reference agent takes for a live one), and
	# whatever a test starts dies with the run. tests/run runs the UML suites beside the
	# rest (two lanes), every binary to its end.
	unshare --pid --fork --mount-proc tini -s -- env CARGO=$(CARGO) tests/run; rc=$$?; tests/cleanup; exit $$rc

# PATRONI=1 adds bench/patroni.sh (Patroni and etcd in namespaces, about 10 minutes; it
# installs patroni, etcd-server and etcd-client itself).
bench:
	.ci/apt-ensure .ci/packages-runtime .ci/packages-test
	$(MAKE) install
	for b in bench/*.sh; do \
	  if [ "$$b" = bench/patroni.sh ] && [ -z "$(PATRONI)" ]; then continue; fi; \
	  "$$b" || exit 1; \
	done

# The main job on one machine (docs/lab.md). LAB_ARGS go to `pgstack lab up` (default:
# the replication stack, synchronous, so that no acknowledged commit can be lost; e.g.
# LAB_ARGS='--stack shared', '--nodes 3 --sync', '--sync --set provider=heartbeat').
PGSTACK ?= ./target/release/pgstack
KEEP ?=
LAB_ARGS ?= --sync
lab:
	.ci/apt-ensure .ci/packages-runtime .ci/packages-lab
	$(MAKE) build
	./target/release/pgstack install --prefix $(PREFIX)
	$(MAKE) lab-run PGSTACK=$(PREFIX)/sbin/pgstack

# The scenario alone, on an installed pgstack: any failure removes the lab (unless KEEP=1).
lab-run:
	@set -e; P=$(PGSTACK); \
	if [ -z "$(KEEP)" ]; then trap '$$P lab down --dir /tmp/pgst-lab' EXIT; else trap '[ $$? -eq 0 ] || $$P lab down --dir /tmp/pgst-lab' EXIT; fi; \
	$$P lab up $(LAB_ARGS); \
	echo; echo "== a writer inserting through the VIP from the client namespace"; \
	$$P lab writer start; \
	echo; echo "== switchover (the promoted role, or PGServer, moved; constraint cleared)"; \
	$$P lab switchover; \
	echo; echo "== power cut of the primary (the active node)"; \
	$$P lab crash; \
	echo; echo "== the crashed node boots again (a former primary: rejoined as a standby first)"; \
	$$P lab restore; \
	echo; echo "== acknowledged rows"; \
	$$P lab writer check; \
	$$P lab status; \
	if [ -n "$(KEEP)" ]; then \
	  echo; echo "The lab keeps running. Try:"; \
	  echo "  $$P lab status | psql [SQL] | switchover [NODE] | crash [NODE] | kill-corosync NODE | restore [NODE]"; \
	  echo "  $$P lab writer start|stop|check"; \
	  echo "  $$P lab down          (removes everything)"; \
	fi
