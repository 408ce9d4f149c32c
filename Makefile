# Two commands do all set-up: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test install browser bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start the bot on the embedded default (SQLite under var/, sandbox WeChat).
run: $(STAMP)
	$(BIN)/resident-bot serve

## Headless Chromium for the browser tests (Debian package, with a CJK font for readable screenshots), installed when missing.
browser:
	@test -x $(CHROMIUM) || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-microhei)

## Install everything and run the whole suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set).
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/match.py

clean:
	rm -rf $(VENV) var .pytest_cache
