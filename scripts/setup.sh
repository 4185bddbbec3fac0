#!/usr/bin/env bash
# Shared set-up: Debian packages when missing, then a venv with the locked dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v samba-tool >/dev/null 2>&1 || need_pkgs+=(samba-ad-dc samba-ad-provision)
command -v ldbadd >/dev/null 2>&1 || need_pkgs+=(ldb-tools)
command -v kinit >/dev/null 2>&1 || need_pkgs+=(krb5-user)
command -v unshare >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${need_pkgs[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
  else
    echo "setup: not root, cannot install ${need_pkgs[*]}; the Samba lab tests will say why they skip" >&2
  fi
fi

PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.lock .venv/.lock-installed; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  cp requirements.lock .venv/.lock-installed
fi
