# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is installed first and pinned, so the range in pyproject never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,viz]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m stylegan demo

test: $(STAMP)
	$(PY) -m ruff check .
	bash scripts/ensure_chromium.sh || true
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	@for f in benchmarks/*.py; do \
	  case $$f in *fid_agreement*) continue;; esac; \
	  echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
