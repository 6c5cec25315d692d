# pulse-stt — two commands: `make serve` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
TEST_DEBS := pocketsphinx-testdata espeak-ng sox opus-tools postgresql chromium chromium-driver nginx
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: serve install dev clients test test-unit test-deps test-fixtures lint typecheck format docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The server is the `server` extra (a plain `pip install pulse-stt` is the client only).
# Resemblyzer's wheel ships the speaker-encoder weights; its dependencies (torch) are not
# needed, so it is installed on its own with --no-deps.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[server]'
	$(PIP) install --no-deps resemblyzer==0.1.4
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	@touch $@

## install: the package with its server extra, and the default model (joined once into ~/.cache/pulse-stt)
install: $(VENV)/.installed
	@$(BIN)/pulse-stt model >/dev/null

## serve: run the server (settings from PULSE_STT_* env vars; extra flags via ARGS=...)
serve: install
	$(BIN)/pulse-stt serve $(ARGS)

## dev: the server plus test and lint tools (the dev extra includes the server extra)
dev: $(VENV)/.dev-installed

## test-deps: Debian packages the tests use (real audio, PostgreSQL, headless Chromium)
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

## test-fixtures: real multi-speaker recordings with speaker turns (AMI excerpts and a
## two-person sample with RTTM annotations) from the pyannote.audio source package on PyPI
FIXTURES ?= $(HOME)/.cache/pulse-stt/fixtures
PYANNOTE_SDIST := pyannote_audio-4.0.7
test-fixtures: $(FIXTURES)/$(PYANNOTE_SDIST)/.extracted
$(FIXTURES)/$(PYANNOTE_SDIST)/.extracted: | $(BIN)/python
	@mkdir -p $(FIXTURES)
	$(PIP) download --no-deps --no-binary :all: pyannote.audio==4.0.7 -d $(FIXTURES)
	tar -xzf $(FIXTURES)/$(PYANNOTE_SDIST).tar.gz -C $(FIXTURES) --wildcards \
		'$(PYANNOTE_SDIST)/tests/data/*' '$(PYANNOTE_SDIST)/src/pyannote/audio/sample/*'
	@touch $@

## clients: the ecosystem's Pulse clients (LiveKit Agents' plugin, Pipecat, the official SDK)
## at the versions pinned in tests/support/clients/requirements.txt, in their own virtual
## environment (they pin soxr and protobuf below ours); tests/e2e/test_clients.py runs them
CLIENTS_VENV ?= .venv-clients
CLIENTS_REQ := tests/support/clients/requirements.txt
clients: $(CLIENTS_VENV)/.installed
$(CLIENTS_VENV)/.installed: $(CLIENTS_REQ)
	$(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip --disable-pip-version-check -q install -r $(CLIENTS_REQ)
	@touch $@

## test: lint, format and type checks, then the whole suite (unit + end-to-end, real model)
test: dev test-deps test-fixtures install clients lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

## test-unit: the unit tests only (no server, no model; everything under tests/e2e is marked e2e)
test-unit: dev test-deps
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

## lint: ruff's rules and its formatting, checked (`make format` fixes what it can)
lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

## typecheck: mypy over src/pulse_stt (settings in pyproject.toml)
typecheck: dev
	$(BIN)/mypy

## docs: regenerate docs/CONFIGURATION.md from the settings object
docs: $(VENV)/.installed
	$(BIN)/pulse-stt settings > docs/CONFIGURATION.md

format:
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) $(CLIENTS_VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
