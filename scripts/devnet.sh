#!/usr/bin/env bash
# Installs bcfl into .venv on a fresh machine, then starts a local 4-node devnet on built-in data.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q "torch==2.13.0"
pip install -q -e .
exec bcfl devnet up "$@"
