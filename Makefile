# `make demo` and `make test` work from a fresh clone with nothing but Python 3.11:
# they create .venv, install the project (and Ray, for its tests) with a pinned CPU-friendly torch, and
# fetch the default model into the user cache.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Pin torch before installing the project: any other torch request can pull a multi-GB CUDA build.
TORCH := torch==2.13.*

.PHONY: install model browser demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check '$(TORCH)'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,ray]'
	touch $@

model: install
	$(BIN)/sefa-render models fetch dcgan-digiface

demo: model
	$(BIN)/sefa-render run jobs/demo.yaml
	$(BIN)/sefa-render report jobs/demo.yaml --out outputs/report/demo

# The report's page is tested in headless Chromium; as root (CI) install it when missing, else that test skips.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)

test: model browser
	$(BIN)/python -m pytest -q

bench: model
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) outputs
