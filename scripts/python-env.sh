# Sourced by setup.sh and test.sh: which Python, and which venv, this run uses.
# PYTHON=python3.12 ./scripts/test.sh runs everything on 3.12 in its own .venv-python3.12.
PY=${PYTHON:-python3.11}
if ! "$PY" -c 'import sys' >/dev/null 2>&1; then
  # pyenv's shim refuses a version that is installed but not selected: use it directly.
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/"$PY"; do
    [ -x "$candidate" ] && PY=$candidate
  done
fi
if [ -n "${PYTHON:-}" ] && [ "$PYTHON" != python3.11 ]; then
  VENV=${VENV:-.venv-$(basename "$PYTHON")}
else
  VENV=${VENV:-.venv}
fi
