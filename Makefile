# Two commands for a fresh machine: `make run` and `make test`. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DEV_SETTINGS := config.settings.dev

.PHONY: run test lint typecheck ci install install-dev migrate demo clean bench-tools

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(VENV)/.installed: requirements.txt $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Set up a SQLite database under var/, load demo data, start the web server and a worker.
run: install
	mkdir -p var/outbox
	DJANGO_SETTINGS_MODULE=$(DEV_SETTINGS) $(PY) manage.py migrate --no-input
	DJANGO_SETTINGS_MODULE=$(DEV_SETTINGS) $(PY) manage.py load_demo
	DJANGO_SETTINGS_MODULE=$(DEV_SETTINGS) $(PY) manage.py run_dev

## Run the whole suite (PostgreSQL when DATABASE_URL is set, SQLite otherwise).
test: install-dev
	$(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy .

ci: lint typecheck
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run
	$(MAKE) test

## What the benchmarks drive (bench/api.py, bench/tracking.py): wrk, from Debian's packages.
bench-tools:
	@command -v wrk >/dev/null || apt-get install -y -q wrk || \
		(apt-get update -q && apt-get install -y -q wrk)
	@wrk -v | head -n 1

clean:
	rm -rf $(VENV) var/db.sqlite3 var/outbox .pytest_cache .mypy_cache .coverage
