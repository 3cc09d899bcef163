# Two commands on a fresh machine (Python 3.11+, make):
#   make run    set up .venv, then run the whole pipeline (all notebooks, headless)
#   make test   set up .venv, then run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Quiet TensorFlow's start-up lines; oneDNN's would land in notebook stderr.
export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0
export PYTHONHASHSEED := 0

.PHONY: venv run test test-real notebooks bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: venv
	$(PY) -m lib run

test: venv
	$(PY) -m pytest

# Re-execute the notebooks in place with their default parameters (what is committed).
notebooks: venv
	$(PY) -m lib run --in-place

# Opt-in: checks against the real MovieLens 100K files in ../shared/datasets/ml-100k
# (or ML100K_DIR).
test-real: venv
	$(PY) -m pytest -m realdata

bench: venv
	$(PY) -m lib bench

clean:
	rm -rf runs .pytest_cache
