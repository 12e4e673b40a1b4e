# Two commands for a newcomer: `make run` and `make test`. Both bootstrap what is missing or stale:
# .venv from requirements/dev.lock, node_modules from package-lock.json (npm ci). Nothing else is
# downloaded: the Solidity compiler is solc-js from npm, the chains are Ganache and Anvil from npm.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
FUZZ_VENV := .venv-fuzz
# Node tools (ganache, anvil, solcjs) and the venv's tools (brownie, slither) come first on PATH;
# py-solc-x, brownie and slither find solc-js in tools/solcx instead of downloading a solc.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solcx
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Python writes its bytecode caches (__pycache__/, ignored by git) even where the environment says
# not to: the tests start hundreds of `ledger` processes, and compiling ledger/ and api/ again in
# each cost about a tenth of the suite's CPU time (README "Tests").
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help bootstrap chromium run test test-unit test-contracts test-integration lint ruff mypy slither fuzz bench clean

help:
	@echo "make run    - start a local Ganache (data in ./data), deploy if needed, serve on 127.0.0.1:8000"
	@echo "make test   - the whole suite: lint (ruff, mypy, slither, schemathesis) and all tests"
	@echo "make lint   - only the linters and the API fuzzer"

bootstrap: $(VENV)/.installed node_modules/.installed $(VENV)/.brownie-network

$(VENV)/.installed: requirements/dev.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements/dev.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	$(VENV)/bin/pip check
	@touch $@

# brownie's built-in development network is istanbul and forgets its chain when brownie stops;
# register ours in brownie's per-user network list (~/.brownie), replacing an older registration.
# Its command, tools/ledger-ganache, starts Ganache over the chain database of `make run`, so what
# a `brownie run` does there stays for `make run` (README "Brownie"); its port, chain id, hardfork
# and mnemonic are the cmd_settings in brownie-config.yaml. brownie splits the command at spaces:
# the checkout's path must have none.
$(VENV)/.brownie-network: $(VENV)/.installed Makefile
	$(VENV)/bin/brownie networks delete ledger-ganache >/dev/null 2>&1 || true
	$(VENV)/bin/brownie networks add Development ledger-ganache name="Ledger Ganache (shanghai)" \
	  host=http://127.0.0.1 cmd=$(CURDIR)/tools/ledger-ganache port=8545 >/dev/null
	@touch $@

# The fuzzer lives in its own environment: schemathesis needs hypothesis >= 6.130 while
# eth-brownie pins hypothesis 6.27.3. It installs the same `ledger` package and runtime pins.
$(FUZZ_VENV)/.installed: requirements/fuzz.lock pyproject.toml
	@test -x $(FUZZ_VENV)/bin/python || $(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --upgrade pip
	$(FUZZ_VENV)/bin/pip install --quiet -r requirements/fuzz.lock
	$(FUZZ_VENV)/bin/pip install --quiet --no-deps -e .
	$(FUZZ_VENV)/bin/pip check
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: bootstrap
	$(VENV)/bin/ledger serve

# pytest-xdist workers for the tests (0: one process, every test in order). Most contract and
# integration tests wait on chains, subprocesses and fsync rather than compute, so more workers
# than the two cores of CI overlap that waiting (README "Tests").
PYTEST_WORKERS ?= 3

# One pytest run over unit, contract, integration and browser tests (testpaths in pyproject.toml), so its
# closing line counts the whole suite.
test: bootstrap chromium lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS)

# The page tests (tests/browser) drive Debian's chromium through Playwright's executable_path;
# `playwright install` (a browser downloaded from a CDN) is never run. Installed when missing, with
# a font that has Chinese glyphs for the zh-CN page.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
chromium: $(CHROMIUM) $(CJK_FONT)
$(CHROMIUM) $(CJK_FONT):
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
	  chromium fonts-wqy-microhei >/dev/null

test-unit: bootstrap
	$(VENV)/bin/pytest tests/unit

test-contracts: bootstrap
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) tests/contracts

test-integration: bootstrap
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) tests/integration

lint: ruff mypy slither fuzz

ruff: bootstrap
	$(VENV)/bin/ruff check ledger api tests scripts bench
	$(VENV)/bin/ruff format --check ledger api tests scripts bench

mypy: bootstrap
	$(VENV)/bin/mypy

# slither compiles contracts/ through the same solc wrapper and OpenZeppelin remapping as
# everything else, as standard JSON: its brownie integration (crytic-compile) cannot resolve
# OpenZeppelin files that only re-export others (SafeERC20 imports some). Any medium or high
# finding fails. contracts/test/ (test-only harnesses, never deployed) is compiled with the rest,
# so the libraries it calls are checked, but its own findings are not reported. The optimizer is on
# (200 runs, solc's default), as in brownie-config.yaml: without it OpenZeppelin's P256 (the
# ReadingLedger's fraud proofs) does not compile ("stack too deep").
slither: bootstrap
	$(VENV)/bin/slither contracts --solc-standard-json --solc tools/solcx/solc-v0.8.28 \
		--solc-args=--optimize \
		--solc-remaps "@openzeppelin/=node_modules/@openzeppelin/" \
		--filter-paths "node_modules|contracts/test/" --fail-medium

fuzz: bootstrap $(FUZZ_VENV)/.installed
	$(FUZZ_VENV)/bin/pytest -c tests/fuzz/pytest.ini tests/fuzz

# Throughput, gas, anchoring latency and memory, measured on this machine in one run (a few
# minutes; see "Benchmark" in README.md). The last line printed is one JSON object.
bench: bootstrap
	$(VENV)/bin/python -m bench.run

clean:
	rm -rf build reports crytic-export .mypy_cache .ruff_cache
