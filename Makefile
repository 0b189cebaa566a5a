# aws-iot-bridge: `make run` (local, no AWS) and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
NODE_STAMP := node_modules/.package-lock.json
CONFIG ?= config/example.json
CDK := node_modules/.bin/cdk
# Offline, quiet CDK CLI: no notices, telemetry or version check; jsii quiet about Node 20.
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
CDK_FLAGS := --no-notices --no-version-reporting --no-color -c config=$(CONFIG)

.PHONY: help install system-deps test lint typecheck unit run synth bootstrap deploy destroy bench mutation openapi clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)

# Reinstalls only when a requirement file changed since the last install.
$(DEPS_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# The system check runs first: it installs or names what is missing (npm itself, or a Node older than 20).
$(NODE_STAMP): package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-deps: ## install mosquitto and Node's npm (apt, as root) or say exactly what to install; checks Node >= 20
	@scripts/ensure-system-deps.sh

install: system-deps $(DEPS_STAMP) $(NODE_STAMP) ## everything the tests and the CDK CLI need

lint: $(DEPS_STAMP) ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(DEPS_STAMP) ## mypy (strict)
	$(VENV)/bin/mypy .

test: install lint typecheck ## install what is missing, then ruff, mypy and pytest
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$status

run: install ## the bridge on embedded defaults: local broker, moto, simulated LNS (Ctrl-C stops)
	$(PY) -m devtools $(RUN_ARGS)

# cdk-nag runs on every synth. CDK's built-in CloudFormation schema check (advisory only) is skipped here to keep
# synth fast: the test suite lints the same templates with cfn-lint and the built-in check.
synth: $(DEPS_STAMP) $(NODE_STAMP) ## cdk synth offline (CONFIG=config/example.json)
	CDK_VALIDATION=false $(CDK) synth $(CDK_FLAGS) --quiet

bootstrap: $(DEPS_STAMP) $(NODE_STAMP) ## once per account and CONFIG's region: the CDK's asset bucket, repository and roles
	$(CDK) bootstrap $(CDK_FLAGS)

deploy: $(DEPS_STAMP) $(NODE_STAMP) ## cdk deploy with CONFIG into the current AWS account and CONFIG's region
	$(CDK) deploy $(CDK_FLAGS) --all --require-approval broadening

destroy: $(DEPS_STAMP) $(NODE_STAMP) ## cdk destroy: removes the stacks (data kept unless destroyRemovesData)
	$(CDK) destroy $(CDK_FLAGS) --all

bench: install ## benchmarks: figures printed and written to benchmarks/results/*.json
	$(PY) -m benchmarks

# Not part of `make test`: run it after changing a module it mutates, and before a release. Each module gets its own copy
# of the tree under mutants/ and only its own unit tests (scripts/mutation.py); exits 1 if one scores below 90 %.
mutation: $(DEPS_STAMP) ## mutmut per module ([tool.mutmut] in pyproject.toml): scores and surviving mutants (~30 min)
	$(PY) scripts/mutation.py

openapi: $(DEPS_STAMP) ## rewrite openapi/bridge.json from the code (a test checks it matches)
	$(PY) -m bridge_container.connections.openapi

clean: ## remove generated files (keeps .venv and node_modules)
	rm -rf cdk.out .mypy_cache .pytest_cache .ruff_cache .state mutants
