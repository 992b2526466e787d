# cotlab: `make test` runs the tests, `make book` executes the notebooks and builds the book.
# Both create .venv from the lock (requirements.txt) on first use, and reinstall only when the lock or pyproject changes.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: venv test book book-smoke clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 (or python3) not found" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -r requirements.txt
	$(VENV)/bin/python -m pip install --no-deps -e .
	touch $(STAMP)

test: venv
	$(OFFLINE) MPLBACKEND=Agg $(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# No MPLBACKEND here: the notebooks' kernels use the inline backend so that figures land in the book.
book: venv
	$(OFFLINE) $(VENV)/bin/cotlab reproduce --tier default

book-smoke: venv
	$(OFFLINE) $(VENV)/bin/cotlab reproduce --tier smoke

clean:
	rm -rf _build
