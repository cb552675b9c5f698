# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test deps-system lint typecheck train evaluate bench soak clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.venv: $(STAMP)

run: $(STAMP)
	$(BIN)/newsstream demo

test: $(STAMP) deps-system
	$(BIN)/ruff check .
	$(BIN)/mypy streamer training newsstream bench
	$(BIN)/pytest -q -m "not soak"
	$(BIN)/pytest -q -p no:warnings --doctest-modules streamer training newsstream  # the docstring examples

# promtool + prometheus for tests/test_deploy.py (apt, when root and missing)
deps-system:
	@bash deploy/system-deps.sh

# An existing version is refused: `make train ARGS='--version 1.2.0'` (or ARGS=--force to rebuild it in place).
train: $(STAMP)
	$(BIN)/newsstream train $(ARGS)

evaluate: $(STAMP)
	$(BIN)/newsstream evaluate --data ../shared/datasets/newsevents/dev.jsonl

# Quix Streams pins pydantic<2.14: the benchmark gets its own venv so the dev venv keeps its versions.
bench:
	test -d .venv-bench || $(PY) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --upgrade pip
	.venv-bench/bin/pip install --quiet -e '.[train,bench,broker]'
	.venv-bench/bin/python -m bench.harness

# Long runs, not in CI: @pytest.mark.soak tests (more kill -9 seeds), then bench/soak.py (30 minutes at half
# the measured max rate; results in bench/results/soak.json and bench/SOAK.md).
soak: $(STAMP)
	$(BIN)/pytest -q -m soak
	$(BIN)/python bench/soak.py --minutes 30

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache
