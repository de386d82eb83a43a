# Two commands matter: `make book` (build the tutorial book) and `make test` (everything CI checks).
# Both create .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= python3
PROFILE ?= cpu
JB_FLAGS ?= -W --keep-going --all

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PHANTOM := data/phantom

.PHONY: book test phantom sync clean

# A progress bar is for a person waiting; in a built page it would be a stray widget.
book: export TQDM_DISABLE := 1
book: $(STAMP) $(PHANTOM)
	MODELMIX_PROFILE=$(PROFILE) $(BIN)/jupyter-book build . $(JB_FLAGS)

test: $(STAMP) $(PHANTOM)
	$(BIN)/python -m pytest
	MODELMIX_PROFILE=smoke $(BIN)/jupyter-book build . $(JB_FLAGS) --path-output _build/smoke

phantom: $(PHANTOM)

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.py

clean:
	rm -rf _build $(PHANTOM) .pytest_cache

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e ".[book,dev]"
	touch $@

# Written to a temporary folder first, so an interrupted run never leaves a half phantom behind.
$(PHANTOM): | $(STAMP)
	rm -rf $@.tmp
	$(BIN)/python -m modelmix_lite phantom --out $@.tmp --preset default --seed 0
	mv $@.tmp $@
