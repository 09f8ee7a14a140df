#!/usr/bin/env bash
# Run the static checks, then the test suite, headless. The checks come first and fail fast:
# ruff (lint, then the format check) and mypy, all configured in pyproject.toml. pytest's exit
# code is passed through unchanged: 5 ("no tests ran") is a failure here, never hidden.
set -uo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
.venv/bin/ruff check . || exit
.venv/bin/ruff format --check . || exit
.venv/bin/mypy || exit
exec .venv/bin/python -m pytest "$@"
