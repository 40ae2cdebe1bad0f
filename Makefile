# skiff — the two commands that matter:
#   make run    install what is missing, build, and run `skiff server` in the foreground (as root)
#   make test   install what is missing, then fmt, clippy, unit/integration tests and the e2e suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build outside the clone when we can: a fresh clone (CI) then reuses earlier builds.
# Order: $CARGO_TARGET_DIR if already set, else $SKIFF_TARGET_DIR (default /var/cache/skiff-target)
# if it exists or can be created, else ./target.
SKIFF_TARGET_DIR ?= /var/cache/skiff-target
ifeq ($(strip $(CARGO_TARGET_DIR)),)
CARGO_TARGET_DIR := $(shell mkdir -p "$(SKIFF_TARGET_DIR)" 2>/dev/null && [ -w "$(SKIFF_TARGET_DIR)" ] && echo "$(SKIFF_TARGET_DIR)" || echo "$(CURDIR)/target")
endif
export CARGO_TARGET_DIR

# Recorded by `skiff version`.
SKIFF_GIT_COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
export SKIFF_GIT_COMMIT

SKIFF_BIN := $(CARGO_TARGET_DIR)/release/skiff
DATA_DIR ?= /var/lib/skiff
# Extra flags for `make run`, e.g. make run ARGS="--disable-agent --https-listen-port 7443"
ARGS ?=

.PHONY: help deps build run test fmt-check clippy unit e2e bench fuzz

help:
	@echo "make run    install deps, build, run skiff server (data dir $(DATA_DIR)) in the foreground"
	@echo "make test   install deps, cargo fmt --check, clippy, cargo test, e2e suite"
	@echo "make e2e    end-to-end suite only (real binary, kubectl, Python client)"
	@echo "make bench  API benchmark (skiff bench api)"
	@echo "make fuzz   run each cargo-fuzz target for FUZZ_SECONDS (default 60)"
	@echo "target dir: $(CARGO_TARGET_DIR)"

deps:
	bash scripts/deps.sh

build:
	cargo build --release --bin skiff

run: deps build
	$(SKIFF_BIN) server --data-dir "$(DATA_DIR)" $(ARGS)

test: deps fmt-check clippy unit e2e

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace

e2e:
	bash scripts/e2e.sh

bench: build
	$(SKIFF_BIN) bench api

# Each fuzz target for FUZZ_SECONDS (needs `cargo install cargo-fuzz`; RUSTC_BOOTSTRAP enables the
# sanitizer flags on the stable toolchain).
FUZZ_SECONDS ?= 60
fuzz:
	cd fuzz && for t in request_body selectors patches rbac_rules tokens; do \
	  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz cargo fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done
