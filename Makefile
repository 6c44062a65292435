# Shipyard: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
BIN := .build/debug

# Tests also run real servers: sshd (openssh-server) and a small Python HTTP server for git
# http-backend, check the unit with systemd-analyze, and boot a minimal Debian under a real
# systemd (debootstrap, systemd-nspawn from systemd-container) to install and use the unit, and
# check the .deb with lintian; quality gates query a real Prometheus (Debian's prometheus); the web
# view is checked with prometheus_client's parser and driven in a headless Chromium (Selenium).
# Failover runs three daemons on one PostgreSQL, each in a network namespace of its own (iproute2),
# with partitions (iptables) and one clock an hour off (faketime).
TEST_PACKAGES := postgresql openssl iproute2 iptables faketime openssh-server python3 systemd debootstrap systemd-container lintian prometheus python3-prometheus-client chromium chromium-driver python3-selenium

# make install [PREFIX=/usr/local] [DESTDIR=]: release binaries, systemd unit and snippets, an
# example config, man pages, README, LICENSE and shell completions. make uninstall removes them.
PREFIX ?= /usr/local
DESTDIR ?=
CONFIGURATION ?= release
# Release binaries carry the Swift runtime, and bind every symbol at start (RELRO, BIND_NOW).
RELEASE_FLAGS := --static-swift-stdlib -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now
BINDIR := $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR := $(PREFIX)/share/man
SYSCONFDIR ?= /etc

.PHONY: all deps test-deps build test chaos run lint bench clean install install-files uninstall release deb

all: build

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps $(TEST_PACKAGES)

build: deps
	$(SWIFT) build

# The packaging tests check the release binaries and the .deb, built first (SwiftPM holds the
# build folder while the tests run).
test: test-deps
	$(SWIFT) build --build-tests
	$(MAKE) deb
	$(SWIFT) test

# Failover under faults, 50 rounds of each (make test runs 2): three daemons on one PostgreSQL.
chaos: test-deps
	$(SWIFT) build --build-tests
	SHIPYARD_CHAOS_ROUNDS=50 $(SWIFT) test --skip-build --filter FailoverTests

lint: build
	$(BIN)/shipyardctl lint examples/demo/*.yaml

# The daemon on a demo upstream repository under .build/demo; see README.md.
run: build
	@scripts/demo

# Performance figures beside the tools users would otherwise run (release build).
bench: deps
	$(SWIFT) build -c release $(RELEASE_FLAGS)
	.build/release/shipyard-bench

# Release binaries carry the Swift runtime (--static-swift-stdlib): a host needs Debian's
# libgit2, libyaml and libsqlite3 and nothing of the Swift toolchain.
release: deps
	$(SWIFT) build -c release $(RELEASE_FLAGS)

install: deps
	$(SWIFT) build -c $(CONFIGURATION) $(if $(filter release,$(CONFIGURATION)),$(RELEASE_FLAGS))
	$(MAKE) install-files

# make deb: shipyard_<version>_<arch>.deb (apt install ./shipyard_….deb); see scripts/make-deb.
deb: deps
	$(SWIFT) build -c release $(RELEASE_FLAGS)
	scripts/make-deb

# Copies what is built; does not build (tests call it while SwiftPM holds the build folder).
install-files:
	install -Dm755 .build/$(CONFIGURATION)/shipyardd $(DESTDIR)$(BINDIR)/shipyardd
	install -Dm755 .build/$(CONFIGURATION)/shipyardctl $(DESTDIR)$(BINDIR)/shipyardctl
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/shipyardd|$(BINDIR)/shipyardd|' systemd/shipyardd.service > $(DESTDIR)$(UNITDIR)/shipyardd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/shipyardd.service
	install -m644 systemd/shipyardd.socket $(DESTDIR)$(UNITDIR)/shipyardd.socket
	install -Dm644 systemd/shipyardd.sysusers $(DESTDIR)$(SYSUSERSDIR)/shipyardd.conf
	install -Dm644 systemd/shipyardd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/shipyardd.conf
	install -Dm644 systemd/tasks-drop-in.conf.example $(DESTDIR)$(PREFIX)/share/doc/shipyard/tasks-drop-in.conf.example
	install -Dm644 examples/config.yaml $(DESTDIR)$(SYSCONFDIR)/shipyardd/config.yaml.example
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	.build/$(CONFIGURATION)/shipyardctl --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shipyardctl
	.build/$(CONFIGURATION)/shipyardctl --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_shipyardctl
	.build/$(CONFIGURATION)/shipyardctl --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/shipyardctl.fish
	.build/$(CONFIGURATION)/shipyardd --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shipyardd
	install -Dm644 docs/man/shipyardctl.1 $(DESTDIR)$(MANDIR)/man1/shipyardctl.1
	install -Dm644 docs/man/shipyardd.8 $(DESTDIR)$(MANDIR)/man8/shipyardd.8
	install -Dm644 docs/man/shipyardd.yaml.5 $(DESTDIR)$(MANDIR)/man5/shipyardd.yaml.5
	install -Dm644 README.md $(DESTDIR)$(PREFIX)/share/doc/shipyard/README.md
	install -m644 LICENSE $(DESTDIR)$(PREFIX)/share/doc/shipyard/LICENSE

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/shipyardd $(DESTDIR)$(BINDIR)/shipyardctl
	rm -f $(DESTDIR)$(UNITDIR)/shipyardd.service $(DESTDIR)$(UNITDIR)/shipyardd.socket $(DESTDIR)$(SYSUSERSDIR)/shipyardd.conf $(DESTDIR)$(TMPFILESDIR)/shipyardd.conf
	rm -f $(DESTDIR)$(SYSCONFDIR)/shipyardd/config.yaml.example
	rm -f $(DESTDIR)$(PREFIX)/share/doc/shipyard/tasks-drop-in.conf.example
	rm -f $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shipyardctl $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shipyardd
	rm -f $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_shipyardctl $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/shipyardctl.fish
	rm -f $(DESTDIR)$(MANDIR)/man1/shipyardctl.1 $(DESTDIR)$(MANDIR)/man8/shipyardd.8 $(DESTDIR)$(MANDIR)/man5/shipyardd.yaml.5
	rm -f $(DESTDIR)$(PREFIX)/share/doc/shipyard/README.md $(DESTDIR)$(PREFIX)/share/doc/shipyard/LICENSE

clean:
	$(SWIFT) package clean
	rm -rf .build/demo
