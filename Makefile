# Two commands do everything on a fresh machine:
#   make demo   -- create .venv if missing, install probssl, train + evaluate + report on digits
#   make test   -- create .venv if missing, install probssl with test extras, run ruff (lint + format) and pytest
# TORCH is the torch requirement installed first; the tested CPU build is the default. On a GPU
# machine use e.g. `make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install install-test bench clean test-integrations test-torch-next docs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Torch first and alone, so no later resolver step can swap in a CUDA build; the constraints
# file then holds it at that version while probssl's other dependencies install.
$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) "$(TORCH)"
	$(PIP) -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/probssl demo

test: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

# timm / torchvision backbones against the real packages, in their own venv (torch 2.14.1 + torchvision 0.29.1:
# the tested torch 2.13.0 has no torchvision that imports). ~5.8 GB, several minutes to install from local disk.
INT_VENV ?= .venv-integrations
test-integrations:
	test -x $(INT_VENV)/bin/python || $(PYTHON) -m venv $(INT_VENV)
	$(INT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(INT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check timm pytest -e .
	$(INT_VENV)/bin/python -m pytest -q tests/integrations

# The whole suite at the upper end of the supported torch range (2.14.1, the newest release installable here), in
# the same venv; CI runs it at the lower end (2.13.0). With torchvision and timm present the integration tests run too.
test-torch-next:
	test -x $(INT_VENV)/bin/python || $(PYTHON) -m venv $(INT_VENV)
	$(INT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(INT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check timm -e ".[test]"
	$(INT_VENV)/bin/python -m pytest -q

# The documentation site (mkdocs-material + mkdocstrings) into site/, every warning an error; open site/index.html.
docs: install
	$(PIP) -c constraints.txt -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

bench: install
	$(PY) benchmarks/throughput.py

clean:
	rm -rf runs .pytest_cache
