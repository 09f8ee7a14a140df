# The two commands of the README. Each sets up what it needs first (scripts/setup.sh is idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/lookwhere -v demo $(ARGS)

test: setup
	bash scripts/test.sh $(ARGS)

bench: setup
	$(PY) bench/run_all.py
