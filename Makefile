# The README's two commands are `make run` and `make test`; both set up everything they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check -c constraints-cpu.txt
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8501
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test lint bench chromium clean

$(STAMP): pyproject.toml constraints-cpu.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP_INSTALL) -e '.[profile,dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start the Streamlit app on http://127.0.0.1:8501
run: $(STAMP)
	$(VENV)/bin/streamlit run app/streamlit_app.py --server.address $(HOST) --server.port $(PORT)

## Headless Chromium for the browser tests and static image export (Debian package).
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

## Run the whole test suite
test: $(STAMP) chromium
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check planner profiler app tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
