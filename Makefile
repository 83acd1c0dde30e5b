# Set-up and everyday commands. Each target creates what it needs from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := DJANGO_DEBUG=1

.PHONY: run test test-fast migrate demo worker beat clean assets messages chromium audit lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

## assets: Chart.js and htmx from the npm registry into static/vendor/ (served locally: no CDN)
assets: static/vendor/.installed
static/vendor/.installed: package.json package-lock.json Makefile
	npm ci --no-audit --no-fund
	mkdir -p static/vendor
	# The source map goes too: the bundle names it, and collectstatic's manifest refuses a missing reference.
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map \
	  node_modules/htmx.org/dist/htmx.min.js static/vendor/
	touch $@

## messages: compile locale/*/LC_MESSAGES/django.po to .mo in pure Python (polib; no GNU gettext)
messages: $(VENV)/.installed
	$(DEV) $(BIN)/python manage.py compile_translations

## chromium: Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

## run: install, migrate, load the demo and serve on http://127.0.0.1:8000 (SQLite, eager tasks)
run: $(VENV)/.installed assets messages
	$(DEV) $(BIN)/python manage.py migrate --noinput
	$(DEV) $(BIN)/python manage.py seed_demo
	$(DEV) $(BIN)/python manage.py runserver 127.0.0.1:8000

## test: install and run the whole suite (SQLite by default; DATABASE_URL and CELERY_BROKER_URL switch it)
test: $(VENV)/.installed assets messages chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff lint and format check, and no binary or generated file tracked by git
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	bash .ci/no-binaries

## audit: bandit on our code (fails on high severity) and pip-audit on requirements.txt (fails on a known vulnerability)
audit: $(VENV)/.installed
	bash .ci/audit

worker: $(VENV)/.installed
	$(BIN)/celery -A config worker --loglevel=INFO

beat: $(VENV)/.installed
	$(BIN)/celery -A config beat --loglevel=INFO

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .hypothesis node_modules static/vendor
