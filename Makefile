# Developer and CI entry points. Everything runs from the project's own venv.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
PYTEST_ARGS ?=
# The in-repo vectors, and the workspace's shared copy when it sits beside the checkout.
VECTORS ?= tests/vectors/*.json $(wildcard ../shared/vectors/*.json)
LINT_PATHS := $(wildcard rivetkit tests benchmarks ci fuzz setup.py)
# The pure pass must not also demand the compiled twins.
PURE_ENV := env -u RIVETKIT_REQUIRE_SPEEDUPS RIVETKIT_PURE=1

INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.package-lock.json

.PHONY: docs docs-serve venv test lint format bench bench-micro bench-compare bench-readme vectors clean interop-deps demo cluster fuzz dist test-installed \
	test-standalone

venv: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

# The editable install links the source tree (RIVETKIT_PURE=1: it compiles nothing); the
# build_ext --inplace above then builds rivetkit/_speedups/*.so in the tree, incrementally,
# on every `make venv`, so edited .pyx files and `make clean` are always caught up.
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --upgrade 'setuptools>=77' wheel 'cython>=3.0.10'
	RIVETKIT_PURE=1 $(PY) -m pip install --quiet --no-build-isolation \
		--config-settings editable_mode=compat -e '.[dev]'
	touch $@

# The official TypeScript client for tests/test_interop.py (npm rivetkit, pinned by the lock).
interop-deps: $(INTEROP_STAMP)

$(INTEROP_STAMP): $(INTEROP)/package.json $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm install --no-audit --no-fund --loglevel=error

test: venv interop-deps docs
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PURE_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/) into build/site, warnings as errors; its Python
# examples run in `make test` (sybil, docs/conftest.py).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# Serve the documentation on http://127.0.0.1:8000 with live reload.
docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

# dist/: the sdist, the compiled wheel built from it, and the pure py3-none-any wheel.
dist: venv
	rm -rf dist
	RIVETKIT_REQUIRE_SPEEDUPS=1 $(PY) -m build --outdir dist .
	$(PURE_ENV) $(PY) -m build --wheel --outdir dist .

# Build the wheel, install it in a fresh venv in a temp folder and run the suite there,
# outside the checkout (ci/test_installed.py). TEST_INSTALLED_ARGS=--pure: the pure wheel.
TEST_INSTALLED_ARGS ?=
test-installed: venv interop-deps
	$(PY) ci/test_installed.py $(TEST_INSTALLED_ARGS) $(PYTEST_ARGS)

# Clone the checkout's HEAD into a temp folder with no ../shared beside it, build its own venv
# and npm packages there and run the suite once, compiled (ci/test_standalone.py): the
# repository stands alone. STANDALONE_ARGS=--pure: the pure pass instead.
STANDALONE_ARGS ?=
test-standalone:
	python3 ci/test_standalone.py $(STANDALONE_ARGS) $(PYTEST_ARGS)

# Serve examples/app.py on the embedded default, call the counter and the chat, stop.
demo: venv
	$(PY) examples/demo.py

# A Rivet Engine cluster on 127.0.0.1 (ci/cluster.py): a throwaway PostgreSQL, NATS, two engine
# nodes and three `rivetkit serve --engine` envoys of examples/app.py, until Ctrl-C; needs the
# Debian packages postgresql and nats-server. CLUSTER_ARGS: e.g. --check, --lost-threshold 3000.
CLUSTER_ARGS ?=
cluster: venv interop-deps
	$(PY) ci/cluster.py $(CLUSTER_ARGS)

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

# Coverage-guided fuzzing (fuzz/harness.py, atheris) of the decoders, FUZZ_SECONDS per target;
# crash inputs land in build/fuzz/. The hypothesis fuzz tests (tests/test_fuzz_*.py) run in
# `make test`; RIVETKIT_FUZZ_EXAMPLES=N makes them longer.
FUZZ_SECONDS ?= 20
fuzz: venv
	$(PY) -m pip install --quiet atheris
	mkdir -p build/fuzz
	for target in bare compat parsers; do \
		$(PY) fuzz/harness.py $$target -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=build/fuzz/$$target- -print_final_stats=1 || exit 1; \
	done

# `make bench`: the micro-benchmarks of both twins (benchmarks/test_micro.py), then the peer
# comparisons (benchmarks/bench_peers.py: RivetKit TS 2.3.19 against our embedded server and
# on the same engine, Ray, Pykka), each ratio measured in the run; results and the Markdown
# table in benchmarks/results/. BENCH_ARGS=--quick: a short smoke run. `make bench-readme`
# pastes the last table into docs/performance.md. Installs the `bench` extra (ray), wrk (apt) and the
# RivetKit TS peer (npm, benchmarks/.peers/); `make test` needs none of them.
# Every micro-benchmark run is also saved, per machine, in benchmarks/results/micro-history/
# (pytest-benchmark's storage), the baselines of `make bench-compare`.
BENCH_HARNESS ?= ../shared/bench
BENCH_PEER := benchmarks/.peers/rivetkit-ts
BENCH_PEER_STAMP := $(BENCH_PEER)/node_modules/.package-lock.json
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_ARGS ?=
BENCH_HISTORY := $(CURDIR)/benchmarks/results/micro-history
BENCH_MICRO := $(PY) -m pytest -q -p no:cacheprovider benchmarks/test_micro.py \
	--benchmark-json benchmarks/results/micro.json --benchmark-columns=median,iqr,rounds \
	--benchmark-storage=file://$(BENCH_HISTORY) --benchmark-save=micro

bench: venv $(BENCH_STAMP) interop-deps $(BENCH_PEER_STAMP)
	command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	mkdir -p benchmarks/results
	$(BENCH_MICRO)
	$(PY) benchmarks/bench_peers.py $(BENCH_ARGS)
	$(PY) benchmarks/render_table.py --out benchmarks/results/table.md

bench-micro: venv
	mkdir -p benchmarks/results
	$(BENCH_MICRO)

# The compiled twins' micro-benchmarks against the newest run saved on this machine
# (benchmarks/bench_compare.py): exit 1 when a median is more than 20% slower; the pure twins do
# not gate. With none saved, it runs both twins, saves them as the baseline and says so.
# BENCH_COMPARE_ARGS: e.g. --save (a new baseline), --threshold 30.
BENCH_COMPARE_ARGS ?=
bench-compare: venv
	$(PY) benchmarks/bench_compare.py --storage $(BENCH_HISTORY) $(BENCH_COMPARE_ARGS)

bench-readme: venv
	$(PY) benchmarks/render_table.py --page docs/performance.md

# The same editable form as $(STAMP)'s (compat: a path mypy follows, tests/test_typing.py).
$(BENCH_STAMP): $(STAMP) pyproject.toml
	RIVETKIT_PURE=1 $(PY) -m pip install --quiet --no-build-isolation \
		--config-settings editable_mode=compat -e '.[bench]'
	touch $@

$(BENCH_PEER_STAMP):
	bash $(BENCH_HARNESS)/peers/rivetkit-ts/setup.sh install $(abspath $(BENCH_PEER))

vectors: venv
	$(PY) -m rivetkit.protocol.vectors check $(VECTORS)
	$(PURE_ENV) $(PY) -m rivetkit.protocol.vectors check $(VECTORS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
	rm -f rivetkit/_speedups/*.so rivetkit/_speedups/*.pyd rivetkit/_speedups/*.c rivetkit/_speedups/*.html
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
