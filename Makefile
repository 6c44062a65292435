# Shipyard: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
BIN := .build/debug

# Tests also run real servers: sshd (openssh-server) and a small Python HTTP server for git
# http-backend, and check the unit with systemd-analyze.
TEST_PACKAGES := openssh-server python3 systemd

.PHONY: all deps test-deps build test run lint bench clean

all: build

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps $(TEST_PACKAGES)

build: deps
	$(SWIFT) build

test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

lint: build
	$(BIN)/shipyardctl lint examples/demo/*.yaml

# The daemon on a demo upstream repository under .build/demo; see README.md.
run: build
	@scripts/demo

# Performance figures beside the tools users would otherwise run (release build).
bench: deps
	$(SWIFT) build -c release
	.build/release/shipyard-bench

clean:
	$(SWIFT) package clean
	rm -rf .build/demo
