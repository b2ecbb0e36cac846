# Two commands matter: `make demo` (the main job on the embedded synthetic market)
# and `make test` (the fast test suite). Both build their own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: venv demo test test-slow lint ci bench report lab clean

$(BIN)/aster-rl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,notebooks,dashboard,tune]"
	touch $@

venv: $(BIN)/aster-rl

demo: venv
	$(BIN)/aster-rl demo

test: venv
	$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check aster_rl envs agents tests benchmarks
	$(BIN)/mypy

test-slow: venv
	$(BIN)/python -m pytest -q -m slow

report: venv
	$(BIN)/aster-rl report

# JupyterLab on this machine only (127.0.0.1), kernels in this environment; the `lab` extra is installed here only
lab: venv
	$(BIN)/pip install --quiet -e ".[notebooks,lab]"
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser notebooks/

bench: venv
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
