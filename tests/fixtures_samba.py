"""Samba AD lab fixtures: one real two-DC forest per pytest session.

- `samba_forest` (session): a started `lab.samba.SambaForest` (DC1 127.0.0.2, DC2 127.0.0.3
  unless another session holds those addresses). Skips only when not root or samba-tool is
  missing; any other failure to provision is an error.
- `healthy_forest` (function): the same forest after `reset()`: the healthy baseline.
Tests that use either fixture are marked `samba` automatically.
"""

from __future__ import annotations

import atexit
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.loopback import claim_address_pair
from lab.samba import SAMBA_TOOL, SambaForest

_SAMBA_FIXTURES = ("samba_forest", "healthy_forest")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every test that uses the Samba lab with `samba`."""
    if any(name in getattr(item, "fixturenames", ()) for name in _SAMBA_FIXTURES):
        item.add_marker(pytest.mark.samba)


@pytest.fixture(scope="session")
def samba_forest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaForest]:
    """A provisioned, started two-DC Samba forest for the whole session."""
    if os.geteuid() != 0:
        pytest.skip("the Samba AD lab needs root (mount namespace, samba daemons)")
    if not Path(SAMBA_TOOL).exists() or shutil.which("samba") is None:
        pytest.skip("samba-ad-dc is not installed (samba-tool/samba missing)")
    claim = claim_address_pair()
    forest = SambaForest(tmp_path_factory.mktemp("samba-lab"), first_address=claim.address)
    atexit.register(forest.stop)  # a crash of the session must not leave DCs running
    try:
        forest.start()
        yield forest
    finally:
        forest.clean()
        claim.release()


@pytest.fixture
def healthy_forest(samba_forest: SambaForest) -> SambaForest:
    """The session forest, reset to its healthy baseline before the test."""
    samba_forest.reset()
    return samba_forest
