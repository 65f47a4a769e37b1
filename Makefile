# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean install web-runtime

# torch goes in first: pinned to the local CPU wheel, so pip never pulls a CUDA build.
# invisible-watermark goes in with --no-deps: its own deps would drag in opencv-python (non-headless) and friends.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps invisible-watermark==0.2.0
	touch $(STAMP)

install: $(STAMP) web-runtime

# onnxruntime-web for the browser (the studio page, `charforge export web`): `npm pack` of the pinned version into
# the cache, checked against its sha512, three files copied into charforge/web/runtime/ (not in git). Without npm
# it says so and goes on: the studio page then generates on the server, the browser tests skip.
web-runtime: $(STAMP)
	$(PY) -m charforge.web.vendor

demo: $(STAMP)
	$(PY) -m charforge demo --out demo_out

test: $(STAMP) web-runtime
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check charforge tests bench
	$(VENV)/bin/ruff format --check charforge tests bench

bench: $(STAMP)
	$(PY) bench/bench_creator.py

clean:
	rm -rf $(VENV) demo_out build *.egg-info
