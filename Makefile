# Two commands on a fresh machine: `make run` and `make test`. Both create the virtual environment
# on first use (Python >= 3.11) and install the package with everything it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.diqkd-installed

.PHONY: run test bench lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "diqkd needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	# pyldpc ships only an sdist whose setup.py imports numpy: install numpy first, then build
	# pyldpc without build isolation so that its setup sees that numpy.
	$(PY) -m pip install --quiet "numpy>=1.26,<3"
	$(PY) -m pip install --quiet --no-build-isolation "pyldpc>=0.7.9,<0.8"
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/diqkd run

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check diqkd cli tests bench
	$(VENV)/bin/mypy diqkd

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
