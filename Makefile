# plugd: `make run` starts a simulated plug, `make test` runs every test.
# Each sets up what it needs first: `make run` a virtualenv with plugd and what it runs on,
# `make test` the same plus the test tools and what the harnesses need from Debian.
# `make run PORT=8081` serves the page on another port (0: any free one, printed).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The page's port for `make run` (from the command line only, not the environment).
PORT   := 8080
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
READY  := $(VENV)/.ready-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)

# What the whole test suite needs from Debian: the systemd bindings' build, systemd-analyze
# (units), seccomp for the sandbox test, `ip netns` and setpriv (the namespace mesh), unshare
# (mDNS, maintainer scripts), mount (the full-disk tmpfs), dpkg-deb, lintian and what the .deb
# takes from Debian, debootstrap (the .deb installed and purged by apt in a fresh Debian), git
# (the .deb's date), and Chromium for the browser tests (Playwright
# drives the distribution's browser, it downloads none), mosquitto, its clients and openssl
# (the MQTT tests' broker, the documented removal, their test CA).
TEST_DEBS := gcc pkg-config libsystemd-dev systemd python3-seccomp iproute2 util-linux mount \
             dpkg lintian debootstrap git python3-colorzero python3-smbus2 python3-systemd \
             python3-click python3-h11 python3-idna \
             python3-prometheus-client chromium fonts-dejavu-core \
             mosquitto mosquitto-clients openssl
TEST_READY := $(VENV)/.test-ready-$(shell echo $(TEST_DEBS) | cat - setup.cfg | cksum | cut -d' ' -f1)

.PHONY: run test bench deb clean fuzz crash flood soak reliability

$(READY):
	@command -v $(PYTHON) >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3 python3-venv; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "plugd needs Python 3.11 or newer"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	rm -f $(VENV)/.ready-* && touch $@

RUN_AT = $(if $(filter 0,$(PORT)),the address it prints,http://localhost:$(PORT); plugctl: $(VENV)/bin/plugctl --port $(PORT) status)

run: $(READY)
	@echo "plugd: mesh on loopback, page at $(RUN_AT)"
	$(VENV)/bin/plugd --simulate --http-port $(PORT)

$(TEST_READY): $(READY)
	@dpkg -s $(TEST_DEBS) >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $(TEST_DEBS); }
	$(PY) -m pip install --quiet -e '.[test,systemd]' 'playwright>=1.40'
	rm -f $(VENV)/.test-ready-* && touch $@

# As root (CI), every harness can run, so a skip is a failure, with its reason; without root a
# test may skip, and says why. PLUGD_STRICT_SKIPS=1 in the environment (.ci/run) forces it.
PLUGD_STRICT_SKIPS ?= $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)

# mypy runs on the files its [tool.mypy] section lists; without that section it has none.
test: $(TEST_READY)
	$(VENV)/bin/ruff check plugd tests bench packaging fuzz
	if grep -q '^\[tool.mypy\]' pyproject.toml; then $(VENV)/bin/mypy; fi
	PLUGD_STRICT_SKIPS=$(PLUGD_STRICT_SKIPS) $(PY) -m pytest

bench: $(READY)
	$(PY) -m bench

# The long runs of the reliability harnesses; `make test` runs a short version of each.
# `make reliability` runs them all but the soak (the mesh tests need root and `ip netns`).
FUZZ_SECONDS ?= 300

fuzz: $(READY)
	$(PY) -m pip install --quiet 'atheris>=2.3'
	$(PY) -m fuzz --seconds $(FUZZ_SECONDS)

crash: $(READY)
	$(PY) -m tests.crash --kills 1000

flood: $(READY)
	$(PY) -m bench.flood --seconds 60

soak: $(READY)
	$(PY) -m bench.soak --minutes 30

reliability: $(TEST_READY)
	$(PY) -m pytest tests/mesh tests/crash tests/test_faults.py tests/test_clock.py \
	  tests/test_fuzz.py tests/test_meshkey.py tests/test_flood.py
	$(MAKE) fuzz crash flood

deb: $(READY)
	PYTHON=$(PY) packaging/deb/build

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
