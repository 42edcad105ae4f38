# The two commands of the README:
#   make install   Debian packages, release build, install of the binary, shims, man pages
#   make test      test packages, build, install, every test (root: namespaces, loop devices)
PREFIX ?= /usr
CARGO ?= cargo
DEB_ARCH := $(shell dpkg --print-architecture)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all build install uninstall test test-unit test-root bench clean-test-leftovers deb test-install

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
	.ci/apt-ensure .ci/packages-runtime .ci/packages-test .ci/packages-deb
	$(MAKE) build
	$(MAKE) test-install
	tests/cleanup
	# A PID namespace of its own, with tini as its init: orphans are reaped (a killed
	# server must not linger as a zombie a reference agent takes for a live one), and
	# whatever a test starts dies with the run.
	unshare --pid --fork --mount-proc tini -s -- $(CARGO) test --locked --no-fail-fast -- --test-threads=2; rc=$$?; tests/cleanup; exit $$rc

bench:
	.ci/apt-ensure .ci/packages-runtime .ci/packages-test
	$(MAKE) install
	for b in bench/*.sh; do "$$b" || exit 1; done
