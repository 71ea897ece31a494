# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

TL2_VENV  := .venv-tl2
TL2_STAMP := $(TL2_VENV)/.installed

.PHONY: setup browser demo test test-tl2 notebook notebooks-sync bench clean

setup: $(STAMP)

# torch is installed first, pinned to the local CPU build, and constraints.txt keeps
# every later install on it: a CPU-only machine never downloads CUDA packages.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/interp demo

browser:
	@bash scripts/install_browser.sh

test: setup browser
	$(PY) -m pytest

# TransformerLens 2.x compatibility (CI runs it after `make test`): a separate venv with the newest
# TransformerLens 2 (pinned with everything it pulls in constraints-tl2.txt, on the same CPU torch),
# where to_hooked_transformer() must give a real HookedTransformer with our logits.
$(TL2_STAMP): pyproject.toml constraints-tl2.txt
	$(PYTHON) -m venv $(TL2_VENV)
	$(TL2_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-compile torch==2.13.0
	$(TL2_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-compile -c constraints-tl2.txt -e . pytest
	touch $(TL2_STAMP)

test-tl2: $(TL2_STAMP)
	$(TL2_VENV)/bin/python -m pytest -p no:cacheprovider tests/test_tl_compat.py tests/test_tl_surface.py

# JupyterLab on notebooks/ (the .py scripts open as notebooks through jupytext; widgets for progress bars).
NB_STAMP := $(VENV)/.notebooks
$(NB_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,notebooks]"
	touch $(NB_STAMP)

# --allow-root only where make runs as root (a container): JupyterLab refuses root otherwise.
notebook: $(NB_STAMP)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

# After editing a notebook (its .py script or the .ipynb in Jupyter): sync each pair (the file edited last
# wins) and strip the outputs from the .ipynb, as committed.
notebooks-sync: $(NB_STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.py
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(TL2_VENV) .pytest_cache
