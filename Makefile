# One virtual environment in .venv; every target installs what it needs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench bench-quick screenshot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The product on the embedded SQLite default: the demo patients loaded, the API served.
run: $(STAMP)
	$(BIN)/oncoledger demo --quiet
	$(BIN)/oncoledger serve

## The whole test suite (PostgreSQL tests run when ONCOLEDGER_TEST_DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain projections api cli bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

## docs/patient-page.png again, from the browser tests (needs /usr/bin/chromium).
screenshot: $(STAMP)
	ONCOLEDGER_UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/adapters/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain projections api cli bench
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
