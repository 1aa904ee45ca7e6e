# Two commands on a fresh Debian/Ubuntu machine: `make demo` (main job) and `make test` (tests).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install demo test test-slow bench report

install:
	@command -v iverilog >/dev/null || { apt-get update -qq && apt-get install -y -qq iverilog; }
	$(PIP) install -q -e '.[dev]'

demo: install
	itx demo

test: install
	$(PYTHON) -m pytest -q

test-slow: install
	$(PYTHON) -m pytest -q -m slow

bench: install
	itx bench gemm

report: install
	itx report
