# The two commands: `make run` and `make test`. Everything else is for working on the project.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock requirements-dev.txt requirements.txt | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run test lint bench stop lock

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -c requirements.lock
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## web, workers, beat and Flower on embedded PostgreSQL and Redis
	$(PY) scripts/dev.py

TEST_ENV := EMBEDDED_DIR=$(CURDIR)/var/test EMBEDDED_DURABLE=0

test: $(STAMP)  ## the whole suite against real servers and a real worker
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	$(TEST_ENV) $(PY) -m config.embedded stop; exit $$status

bench: $(STAMP)  ## benchmarks against baselines measured in the same run (bench/)
	$(PY) bench/run.py $(BENCH)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

stop:  ## stop embedded servers left running by a manage.py command
	$(PY) -m config.embedded stop
	$(TEST_ENV) $(PY) -m config.embedded stop

lock: $(STAMP)  ## re-pin every installed package after changing requirements*.txt
	(echo "# Every package CI and make install, transitive ones included (regenerate: make lock)."; \
	 $(PY) -m pip freeze --exclude-editable) > requirements.lock
