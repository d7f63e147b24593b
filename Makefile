# plugd: `make run` starts a simulated plug, `make test` runs every test.
# Both set up what they need first (a virtualenv with plugd and its test tools).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
READY  := $(VENV)/.ready-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test bench clean

$(READY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "plugd needs Python 3.11 or newer"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.ready-* && touch $@

run: $(READY)
	@echo "plugd: page at http://localhost:8080, mesh on loopback; plugctl: $(VENV)/bin/plugctl --port 8080 status"
	$(VENV)/bin/plugd --simulate

test: $(READY)
	$(VENV)/bin/ruff check plugd tests bench
	$(PY) -m pytest

bench: $(READY)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
