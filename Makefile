# Two commands on a fresh machine (Python 3.11+, make):
#   make run    set up .venv, then run the whole pipeline (all notebooks, headless)
#   make test   set up .venv, then run every test
# Then `make serve`: the web app on http://127.0.0.1:8000/ (trains serving models first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Quiet TensorFlow's start-up lines; oneDNN's would land in notebook stderr.
export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0
export PYTHONHASHSEED := 0

.PHONY: venv run test lint test-real notebooks bench clean train serve

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: venv
	$(PY) -m lib run

test: lint
	$(PY) -m pytest

# The web app: serving models (both stages on every rating) are trained once, when missing.
DATASET ?= auto
train: venv
	$(PY) -m lib train --dataset $(DATASET)

serve: venv
	$(PY) -m lib serve --dataset $(DATASET) --train-if-missing

# Re-execute the committed notebooks in place on the real MovieLens 100K, copied into the
# git-ignored data/ml-100k/ from ML100K_DIR (never committed: the licence forbids it).
ML100K_DIR ?= ../shared/datasets/ml-100k
notebooks: venv
	$(PY) -m lib data download ml-100k --from-dir $(ML100K_DIR)
	$(PY) -m lib run --in-place --dataset ml-100k

lint: venv
	$(PY) -m ruff check lib tests

# Opt-in: checks against the real MovieLens 100K files in ../shared/datasets/ml-100k
# (or ML100K_DIR).
test-real: venv
	$(PY) -m pytest -m realdata

bench: venv
	$(PY) -m lib bench

clean:
	rm -rf runs .pytest_cache
