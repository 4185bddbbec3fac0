#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, tests (JUnit XML in test-results/).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-browser
.venv/bin/ruff check --no-cache .
.venv/bin/ruff format --no-cache --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
mkdir -p test-results
exec .venv/bin/pytest -rs --junitxml=test-results/junit.xml "$@"
