#!/usr/bin/env bash
# One-time, idempotent set-up for a fresh machine: system packages (when root), the virtual
# environment and every Python package the project and its tests need.  Re-running it is cheap:
# the Python step is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
# espeak-ng speaks the test words of the voice-onset tests (tests/analysis/_speech.py).
SYSTEM_PACKAGES=(xvfb libportaudio2 chromium espeak-ng)

missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing system packages (${missing[*]}); run as root or: sudo apt-get install ${missing[*]}" >&2
    fi
fi

if ! command -v "$PYTHON" >/dev/null; then
    echo "setup: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

stamp="$VENV/.setup-stamp"
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python packages into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # pysaliency builds from source and needs these at build time.
    "$VENV/bin/python" -m pip install -q "cython" "numpy" "setuptools<81"
    "$VENV/bin/python" -m pip install -q -e ".[cnn,experiment,server,distributed,bids,lsl,test]"
    echo "$want" > "$stamp"
fi
