# Shipyard: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
BIN := .build/debug

.PHONY: all deps build test run lint clean

all: build

deps:
	@scripts/install-deps

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

lint: build
	$(BIN)/shipyardctl lint examples/demo/*.yaml

# For now: check the demo shipyards and show what the daemon will do with them.
run: build
	@$(BIN)/shipyardctl lint examples/demo/shipyard.yaml examples/demo/shipyard-with-approval.yaml
	@echo
	@echo "shipyardd will poll a demo upstream repository holding examples/demo/shipyard.yaml and run its"
	@echo "'delivery' sequence: qa (je-deployment, je-test), then production (je-deployment)."
	@echo "Adding the approval task (examples/demo/shipyard-with-approval.yaml) makes production wait for"
	@echo "'shipyardctl approve'. Try the linter: $(BIN)/shipyardctl lint --help"

clean:
	$(SWIFT) package clean
