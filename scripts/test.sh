#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! command -v prometheus >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
        || echo "warning: could not install the prometheus Debian package; tests that need it will fail" >&2
fi
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q "torch==2.13.0"
pip install -q -e '.[test]'
ruff check .
mypy consensus learning
pytest -q -p no:cacheprovider "$@"
