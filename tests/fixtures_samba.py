"""Samba AD lab fixtures: one real two-DC forest per pytest session.

- `samba_forest` (session): a started `lab.samba.SambaForest` (DC1 127.0.0.2, DC2 127.0.0.3
  unless another session holds those addresses). Skips only when not root or samba-tool is
  missing; any other failure to provision is an error.
- `healthy_forest` (function): the same forest after `reset()`: the healthy baseline.
Tests that use either fixture are marked `samba` automatically.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from lab.samba import SAMBA_TOOL, SambaForest

_SAMBA_FIXTURES = ("samba_forest", "healthy_forest")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every test that uses the Samba lab with `samba`."""
    if any(name in getattr(item, "fixturenames", ()) for name in _SAMBA_FIXTURES):
        item.add_marker(pytest.mark.samba)


def _lock_addresses() -> tuple[str, IO[str]]:
    """A pair of loopback addresses no other running session holds (flock per pair)."""
    for last in range(2, 60, 2):
        handle = open(f"/tmp/ad1411-samba-lab-127.0.0.{last}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return f"127.0.0.{last}", handle
    raise RuntimeError("every Samba lab address pair in 127.0.0.2-59 is held by another session")


@pytest.fixture(scope="session")
def samba_forest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaForest]:
    """A provisioned, started two-DC Samba forest for the whole session."""
    if os.geteuid() != 0:
        pytest.skip("the Samba AD lab needs root (mount namespace, samba daemons)")
    if not Path(SAMBA_TOOL).exists() or shutil.which("samba") is None:
        pytest.skip("samba-ad-dc is not installed (samba-tool/samba missing)")
    address, lock = _lock_addresses()
    forest = SambaForest(tmp_path_factory.mktemp("samba-lab"), first_address=address)
    atexit.register(forest.stop)  # a crash of the session must not leave DCs running
    try:
        forest.start()
        yield forest
    finally:
        forest.clean()
        with contextlib.suppress(OSError):
            lock.close()


@pytest.fixture
def healthy_forest(samba_forest: SambaForest) -> SambaForest:
    """The session forest, reset to its healthy baseline before the test."""
    samba_forest.reset()
    return samba_forest
