#!/usr/bin/env bash
# The whole test suite: set-up, lint, types, tests (JUnit XML in test-results/).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-browser
. scripts/python-env.sh
"$VENV/bin/ruff" check --no-cache .
"$VENV/bin/ruff" format --no-cache --check .
"$VENV/bin/mypy"
"$VENV/bin/lint-imports" --no-cache
mkdir -p test-results
exec "$VENV/bin/pytest" -rs --junitxml=test-results/junit.xml "$@"
