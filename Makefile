# Flock: build, test, data, demo and benchmarks. `make help` lists the targets.
# Everything runs from the repository root; CI runs `make test` on a fresh machine (.ci/run).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
SWIFT  ?= swift
# `make test FILTER=TrainingTests` runs only the tests that match.
FILTER ?=

export PYTHON

.PHONY: help deps data build test demo bench peer-deps proto clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install system and Python dependencies that are missing (apt, pip); no-op when present
	@bash scripts/deps.sh

data: deps ## write data/*.csv (MNIST 5k, digits) and check their SHA-256
	@$(PYTHON) scripts/fetch_data.py

build: deps ## build flock-edge and flock-server in release mode
	$(SWIFT) build -c release

test: deps data ## build and run the tests in release mode (FILTER=... to select)
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build $(if $(FILTER),--filter '$(FILTER)')

demo: deps data build ## train on MNIST 5k, then federate it: 1 server + 10 edge processes on 127.0.0.1, 20 rounds
	@bash scripts/demo.sh

bench: deps data build ## training throughput of Flock (beside PyTorch when installed: make peer-deps) and secure-aggregation costs
	@bash scripts/bench.sh

peer-deps: ## create .venv-peer with PyTorch 2.15 for the bench comparison (~6 GB download)
	@bash scripts/peer_deps.sh

proto: deps ## regenerate Sources/FlockWire/Generated from the .proto files (protoc + plugins from the mirror)
	@bash scripts/proto.sh

clean: ## remove demo and bench outputs (.build/demo, .build/bench)
	rm -rf .build/demo .build/bench
