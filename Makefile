# The two documented commands: `make demo` and `make test`. Both work on a fresh machine
# that has only python3.11 and pip; everything else they need, they install.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Debian packages the tests use: a real redis-server (crawl), llvm-symbolizer and addr2line
# (oops symbolization), cross compilers for the test ELF rebuild script.
APT_PACKAGES := redis-server llvm binutils-multiarch graphviz
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-all: $(VENV)/bin/python pyproject.toml
	$(PIP) install -q -e '.[all]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python pyproject.toml
	$(PIP) install -q -e '.[all,dev]'
	touch $(VENV)/.installed-all $@

demo: $(VENV)/.installed-all
	$(VENV)/bin/fivefold demo

test: $(VENV)/.installed-dev
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "warning: could not install$$missing; tests that need them will be skipped"; \
	fi
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest
