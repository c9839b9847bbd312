# The two commands of the README: `make run` and `make test`.
# pyenv picks the Python of .python-version (3.12) for python3.12 / python3.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1:8000

.PHONY: install run test test-sqlite test-postgres test-faults lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 12), "Python 3.12 is needed, found " + sys.version' \
		|| { echo "Install Python 3.12 (pyenv install 3.12) and try again."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,redis,telemetry]'
	@touch $@

install: $(VENV)/.installed

# rundemo: the web server, the job dispatcher (runjobs) and django-q2's cluster (qcluster);
# Ctrl-C stops all three
# each step says itself what it does, or in one line what is wrong (a missing database...)
run: install
	@$(BIN)/python manage.py migrate --noinput
	@$(BIN)/python manage.py ensure_demo_superuser
	@$(BIN)/python manage.py rundemo $(HOST)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

test: install lint
	$(BIN)/python manage.py check --fail-level WARNING
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(MAKE) test-sqlite
	$(MAKE) test-postgres
	$(MAKE) test-faults

test-sqlite: install
	$(BIN)/python -m pytest -m 'not faults'

test-postgres: install
	DATABASE_URL=$(PG_URL) $(BIN)/python -m pytest -m 'not faults'
	# again with server-side prepared statements on: kv and jobs then prepare their hot statements
	DATABASE_URL=$(PG_URL) TEST_PREPARE_THRESHOLD=5 $(BIN)/python -m pytest -q \
		tests/test_kv_store.py tests/test_kv_l1.py tests/test_kv_cache.py tests/test_kv_processes.py \
		tests/test_jobs_dispatcher.py tests/test_jobs_processes.py tests/test_jobs_edges.py

# the fault suite, once: it starts its own PostgreSQL and Redis (whatever DATABASE_URL says),
# restarts them, stops workers and cuts a host off; about 3 minutes, needs root (CI=true: required)
test-faults: install
	$(BIN)/python -m pytest -m faults tests/faults

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm *.egg-info
