# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv/ on first use and reuse it afterwards (it is rebuilt when setup.cfg changes).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

DEBIAN := $(VENV)/.debian-packages

.PHONY: demo test install

demo: $(INSTALLED) $(DEBIAN)
	$(PYTHON) recipes/model_summary.py

test: $(INSTALLED) $(DEBIAN)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

install: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $(INSTALLED)

# Debian packages from debian-packages.txt: installed when root, otherwise only checked.
$(DEBIAN): debian-packages.txt
	@packages="$$(grep -v '^#' debian-packages.txt | xargs)"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$packages >/dev/null; \
	else \
		for p in $$packages; do dpkg -s $$p >/dev/null 2>&1 || echo "warning: Debian package $$p is missing (run as root to install it)"; done; \
	fi
	mkdir -p $(VENV) && touch $(DEBIAN)

