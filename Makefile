# d2q: set up, test and demo on a fresh machine.
#
# The virtualenv lives outside the checkout, so every clone (and CI) reuses
# the several-GB PyTorch install once it exists.

VENV ?= $(HOME)/.cache/d2q/venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test test-unit demo lint typecheck clean-servers

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e '.[dev,eval,metrics,ctranslate2,aws]'

test: install
	$(VENV)/bin/ruff check worker tests benchmarks
	$(VENV)/bin/mypy worker
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/d2q cluster start --port 9200
	$(PY) -m worker.demo --url http://127.0.0.1:9200

lint: install
	$(VENV)/bin/ruff check worker tests benchmarks
	$(VENV)/bin/ruff format --check worker tests benchmarks

typecheck: install
	$(VENV)/bin/mypy worker

clean-servers: install
	$(VENV)/bin/d2q cluster stop --port 9200
