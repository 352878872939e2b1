# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv/ on first use and reuse it afterwards (it is rebuilt when setup.cfg changes).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test install

demo: $(INSTALLED)
	$(PYTHON) recipes/model_summary.py

test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

install: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $(INSTALLED)
