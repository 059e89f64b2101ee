# Developer and CI entry points. Everything runs from the project's own venv.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
PYTEST_ARGS ?=
VECTORS ?= ../shared/vectors/*.json
LINT_PATHS := $(wildcard rivetkit tests benchmarks ci setup.py)
# The pure pass must not also demand the compiled twins.
PURE_ENV := env -u RIVETKIT_REQUIRE_SPEEDUPS RIVETKIT_PURE=1

INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.package-lock.json

.PHONY: venv test lint format bench vectors clean interop-deps demo

venv: $(STAMP)
	$(PY) setup.py --quiet build_ext --inplace

# The editable install links the source tree (RIVETKIT_PURE=1: it compiles nothing); the
# build_ext --inplace above then builds rivetkit/_speedups/*.so in the tree, incrementally,
# on every `make venv`, so edited .pyx files and `make clean` are always caught up.
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --upgrade 'setuptools>=77' wheel 'cython>=3.0.10'
	RIVETKIT_PURE=1 $(PY) -m pip install --quiet --no-build-isolation -e '.[dev]'
	touch $@

# The official TypeScript client for tests/test_interop.py (npm rivetkit, pinned by the lock).
interop-deps: $(INTEROP_STAMP)

$(INTEROP_STAMP): $(INTEROP)/package.json $(INTEROP)/package-lock.json
	cd $(INTEROP) && npm install --no-audit --no-fund --loglevel=error

test: venv interop-deps
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PURE_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# Serve examples/app.py on the embedded default, call the counter and the chat, stop.
demo: venv
	$(PY) examples/demo.py

lint: venv
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

bench: venv
	$(PY) benchmarks/bench_bare.py

vectors: venv
	$(PY) -m rivetkit.protocol.vectors check $(VECTORS)
	$(PURE_ENV) $(PY) -m rivetkit.protocol.vectors check $(VECTORS)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
	rm -f rivetkit/_speedups/*.so rivetkit/_speedups/*.pyd rivetkit/_speedups/*.c rivetkit/_speedups/*.html
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
