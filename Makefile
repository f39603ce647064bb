# The two commands of the README, and a few helpers. Needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
# The demo may call local services (a REST API on localhost, a local SMTP server); production leaves
# JETADMIN_OUTBOUND_ALLOW empty, so loopback and private addresses are refused (jetadmin/outbound.py).
export JETADMIN_OUTBOUND_ALLOW ?= 127.0.0.0/8,::1/128

.PHONY: run test lint check worker beat clean

## make run: install, migrate, create the demo tenant and user, serve on http://$(HOST):$(PORT)/
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo --url http://$(HOST):$(PORT)
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

## make test: install the dev tools, then lint, type-check and run the whole suite (scripts/test.sh)
test: $(VENV)/.installed-dev
	PYTHON=$(PY) scripts/test.sh

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy .

worker: $(VENV)/.installed
	$(VENV)/bin/celery -A jetadmin worker -l info

beat: $(VENV)/.installed
	$(VENV)/bin/celery -A jetadmin beat -l info

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache tests/artifacts
