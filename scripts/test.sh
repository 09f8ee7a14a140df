#!/usr/bin/env bash
# Run the test suite headless. pytest's exit code is passed through unchanged: 5 ("no tests ran")
# is a failure here, never hidden.
set -uo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg
exec .venv/bin/python -m pytest "$@"
