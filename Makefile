# kafkalab — two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed
# `manage.py kafka fetch` starts Django only to find the jars current; this stamp, newer than
# broker/pom.xml, skips it. It lives beside the jars, so deleting them brings the fetch back.
JARS   := $(or $(KAFKA_LIBS_DIR),.kafka/libs)/.make-fetched
PORT   ?= 8000
# pytest-xdist workers: most tests wait on Kafka (rebalances, session timeouts), not the CPU:
# with the brokers' idle requests cut, two workers left this 2-core machine 40% idle; four keep
# it about 75% busy and finish in 7.5 minutes instead of 13. A test module stays on one worker.
TEST_WORKERS ?= 4
# Development defaults; a deployment sets these itself (see .env.example).
export DJANGO_DEBUG ?= 1

.PHONY: setup run test lint format bench kafka-up kafka-down kafka-status test-tools clean

setup: $(STAMP) $(JARS)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kafkalab needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(JARS): broker/pom.xml | $(STAMP)
	@$(PY) manage.py kafka fetch
	@touch $@

run: setup
	$(PY) manage.py serve --port $(PORT)

test-tools:
	@scripts/install-test-tools.sh

test: setup test-tools
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup test-tools
	$(PY) -m bench

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

kafka-up: setup
	$(PY) manage.py kafka up

kafka-down:
	$(PY) manage.py kafka down

kafka-status:
	$(PY) manage.py kafka status

clean: kafka-down
	rm -rf .kafka/cluster db.sqlite3
