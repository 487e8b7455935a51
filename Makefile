# Two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= feeds.yaml

.PHONY: install run update build status test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
		{ echo "Could not create $(VENV); on Debian: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# Byte-compiled as pip compiles what it installs; an editable install leaves that to
	@# the first run, which PYTHONDONTWRITEBYTECODE turns into every run.
	$(BIN)/python -m compileall -q aggregator
	@touch $(STAMP)

install: $(STAMP)

run: install          ## poll feeds.yaml now and keep polling; outputs in var/public
	$(BIN)/aggregator --config $(CONFIG) run

update: install       ## poll once, publish, exit
	$(BIN)/aggregator --config $(CONFIG) update

build: install
	$(BIN)/aggregator --config $(CONFIG) build

status: install
	$(BIN)/aggregator --config $(CONFIG) status

lint: install
	$(BIN)/ruff check aggregator tests bench
	$(BIN)/ruff format --check aggregator tests bench
	$(BIN)/mypy

test: lint            ## ruff, mypy, then the whole test suite
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var/public var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache

bench: install        ## ours against lemon24/reader on the synthetic corpus (needs ../shared); writes bench/RESULTS.md
	$(BIN)/python bench/compare.py
